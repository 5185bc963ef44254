"""docker_registry_wsgi.contrib.pyramid: config.include, settings, the tween and its responses."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import webtest
from pyramid.config import Configurator
from pyramid.events import NewRequest, NewResponse
from pyramid.request import Request
from pyramid.response import Response

from docker_registry_wsgi.contrib import ConfigurationError
from docker_registry_wsgi.contrib.pyramid import (
    PassThroughResponse,
    RegistryDelete,
    RegistryEvent,
    RegistryMount,
    RegistryPull,
    RegistryPush,
    _call_streaming,
    forward_events,
    registry_from_settings,
)
from tests.contrib import hooks


def make_site(settings: dict[str, Any], seen: list[Any] | None = None) -> webtest.TestApp:
    """A Pyramid site with a home page, its own 404 page, and the registry included."""
    with Configurator(settings=settings) as config:
        config.add_route("home", "/")
        config.add_view(lambda request: Response("home page"), route_name="home")
        config.add_notfound_view(lambda request: Response("site's own 404", status=404))
        if seen is not None:
            config.add_subscriber(lambda event: seen.append(event.response), NewResponse)
        config.include("docker_registry_wsgi.contrib.pyramid")
        return webtest.TestApp(config.make_wsgi_app())


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    return {"docker_registry.root": str(tmp_path / "registry")}


def test_include_mounts_the_registry_beside_the_sites_views(settings: dict[str, Any]) -> None:
    client = make_site(settings)
    assert client.get("/").text == "home page"
    response = client.get("/v2/")
    assert response.status_int == 200
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert client.get("/v2", status="*").status_int == 200
    for path in ("/v2x", "/v20/a/tags/list"):
        assert client.get(path, status=404).text == "site's own 404"
    unknown = client.get("/v2/nothing/here", status=404)
    assert unknown.json["errors"][0]["code"]  # the registry's 404, not the site's page


@pytest.mark.parametrize("name", ["tests.contrib.hooks:read_only", "tests.contrib.hooks.make_read_only"])
def test_auth_named_in_the_settings(settings: dict[str, Any], name: str) -> None:
    settings["docker_registry.auth"] = name
    hooks.factory_calls.clear()
    client = make_site(settings)
    assert client.post("/v2/a/blobs/uploads/", status=403).json["errors"][0]["code"] == "DENIED"
    if "make_read_only" in name:
        assert len(hooks.factory_calls) == 1
        assert hooks.factory_calls[0]["docker_registry.auth"] == name


def test_a_bad_auth_setting_is_refused(settings: dict[str, Any]) -> None:
    settings["docker_registry.auth"] = "tests.contrib.hooks:factory_calls"
    with pytest.raises(ConfigurationError, match="docker_registry.auth"):
        make_site(settings)


def test_missing_root_names_the_setting() -> None:
    with pytest.raises(ConfigurationError, match="docker_registry.root"):
        registry_from_settings({})


def test_max_manifest_size_setting(settings: dict[str, Any]) -> None:
    settings["docker_registry.max_manifest_size"] = "1K"
    client = make_site(settings)
    big = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"' + b"a" * 2000 + b'"}'
    response = client.put("/v2/a/manifests/v1", params=big, status="*",
                          content_type="application/vnd.oci.image.manifest.v1+json")
    assert response.status_int == 413


def test_a_blob_body_reaches_the_registry_through_pyramid(settings: dict[str, Any]) -> None:
    """Monolithic upload (OCI Distribution Spec, "POST then PUT"): the whole body arrives intact."""
    seen: list[Any] = []
    client = make_site(settings, seen)
    blob = bytes(range(256)) * 4096
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    start = client.post("/v2/a/blobs/uploads/", status=202)
    location = start.headers["Location"]
    put = client.put(f"{location}{'&' if '?' in location else '?'}digest={digest}", params=blob,
                     content_type="application/octet-stream", status=201)
    assert put.headers["Docker-Content-Digest"] == digest
    assert client.get(f"/v2/a/blobs/{digest}").body == blob
    assert any(isinstance(r, PassThroughResponse) for r in seen)  # NewResponse subscribers still run


def test_pass_through_response_keeps_headers_as_made() -> None:
    """A WebOb response would make this Location absolute from the request's host and scheme."""
    response = PassThroughResponse(status="202 Accepted", headerlist=[("Location", "/v2/a/blobs/uploads/u")],
                                   app_iter=[b""])
    result = webtest.TestApp(response).post("/v2/a/blobs/uploads/", status=202)
    assert result.headers["Location"] == "/v2/a/blobs/uploads/u"


def test_call_streaming_pulls_only_the_first_chunk_of_a_lazy_app() -> None:
    pulled: list[int] = []

    def lazy_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for i in range(1000):
            pulled.append(i)
            yield b"x" * 65536

    status, headers, body = _call_streaming(lazy_app, {})
    assert status == "200 OK" and headers == [("Content-Type", "application/octet-stream")]
    assert pulled == [0]
    assert sum(len(chunk) for chunk in body) == 1000 * 65536
    body.close()  # type: ignore[attr-defined]


def test_call_streaming_refuses_an_app_that_never_starts_a_response() -> None:
    with pytest.raises(RuntimeError):
        _call_streaming(lambda environ, start_response: [b"oops"], {})


# -- events (config.registry.notify) ----------------------------------------------------------


def make_site_with_subscribers(settings: dict[str, Any], *subscribers: tuple[Callable[[Any], None], type]
                               ) -> tuple[webtest.TestApp, Any]:
    """A site that includes the registry and adds ``subscribers`` the Pyramid way."""
    with Configurator(settings=settings) as config:
        config.add_route("home", "/")
        config.add_view(lambda request: Response("home page"), route_name="home")
        for function, event_type in subscribers:
            config.add_subscriber(function, event_type)
        config.include("docker_registry_wsgi.contrib.pyramid")
        return webtest.TestApp(config.make_wsgi_app()), config.registry


def _push_blob(client: webtest.TestApp, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data, content_type="application/octet-stream",
                status=201)
    return digest


def test_registry_events_are_notified_with_the_sites_request(settings: dict[str, Any]) -> None:
    every: list[Any] = []
    pushes: list[Any] = []
    client, _ = make_site_with_subscribers(settings, (every.append, RegistryEvent), (pushes.append, RegistryPush))
    digest = _push_blob(client, "team/app", b"layer")
    client.get(f"/v2/team/app/blobs/{digest}")
    client.post(f"/v2/team/copy/blobs/uploads/?mount={digest}&from=team/app", status=201)
    client.delete(f"/v2/team/app/blobs/{digest}", status=202)
    assert [type(e) for e in every] == [RegistryPush, RegistryPull, RegistryMount, RegistryDelete]
    assert [(e.action, e.repository, e.digest) for e in every] == [
        ("push", "team/app", digest), ("pull", "team/app", digest), ("mount", "team/copy", digest),
        ("delete", "team/app", digest)]
    assert pushes == every[:1] and pushes[0].event.size == len(b"layer")
    assert all(isinstance(e.request, Request) for e in every)
    assert every[0].request.path_info == "/v2/team/app/blobs/uploads/"


def test_a_failing_subscriber_is_logged_and_the_push_succeeds(settings: dict[str, Any],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: Any) -> None:
        raise RuntimeError("subscriber bug")

    client, _ = make_site_with_subscribers(settings, (broken, RegistryPush))
    with caplog.at_level(logging.ERROR):
        _push_blob(client, "team/app", b"layer")  # 201
    assert any(r.exc_info and "subscriber bug" in str(r.exc_info[1]) for r in caplog.records)


def test_only_actions_with_subscribers_build_events(settings: dict[str, Any]) -> None:
    deletes: list[Any] = []
    client, component_registry = make_site_with_subscribers(settings, (deletes.append, RegistryDelete))
    container = registry_from_settings(settings)
    forward_events(container, component_registry)
    assert container.events.active  # a subscriber listens for deletes
    _push_blob(client, "team/app", b"layer")
    assert deletes == []
    bare = registry_from_settings(settings)
    forward_events(bare, make_site_with_subscribers(settings, (lambda event: None, NewRequest))[1])
    assert bare.events.active is False  # NewRequest and other site subscribers do not count
