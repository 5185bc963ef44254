"""docker_registry_wsgi.contrib.flask: the init_app extension, configured from app.config."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

import pytest
import webtest
from flask import Flask, current_app, g

from docker_registry_wsgi.app import Registry
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.contrib import ConfigurationError
from docker_registry_wsgi.contrib.flask import (
    EXTENSION_NAME,
    DockerRegistry,
    registry_delete,
    registry_mount,
    registry_pull,
    registry_push,
)
from docker_registry_wsgi.events import Event
from tests.contrib import hooks


def make_app(tmp_path: Path, **config: object) -> Flask:
    app = Flask("site")
    app.config["DOCKER_REGISTRY_ROOT"] = str(tmp_path / "registry")
    app.config.update(config)

    @app.route("/")
    def home() -> str:
        return "home page"

    return app


def test_init_app_mounts_the_registry_from_app_config(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    extension = DockerRegistry()
    registry = extension.init_app(app)
    assert isinstance(registry, Registry)
    assert app.extensions[EXTENSION_NAME] is registry is DockerRegistry.registry(app)
    client = webtest.TestApp(app)
    assert client.get("/").text == "home page"
    response = client.get("/v2/")
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert (tmp_path / "registry").is_dir()


def test_constructor_with_app_initialises_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    DockerRegistry(app)
    assert EXTENSION_NAME in app.extensions


@pytest.mark.parametrize("name", ["tests.contrib.hooks:read_only", "tests.contrib.hooks:make_read_only"])
def test_auth_from_an_import_string_in_config(tmp_path: Path, name: str) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_AUTH=name)
    hooks.factory_calls.clear()
    DockerRegistry().init_app(app)
    if name.endswith("make_read_only"):
        assert hooks.factory_calls == [app.config]
    client = webtest.TestApp(app)
    assert client.get("/v2/").status_int == 200
    denied = client.post("/v2/a/blobs/uploads/", status=403)
    assert denied.json["errors"][0]["code"] == "DENIED"


def test_auth_argument_overrides_config_and_runs_in_an_app_context(tmp_path: Path) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_AUTH="tests.contrib.hooks:read_only", SITE_USERS={"alice": "pw"})
    seen: list[str] = []

    def verify(name: str, password: str) -> object:
        # A site's password check uses current_app and g, as its views do.
        g.checked = name
        seen.append(current_app.name)
        return name if current_app.config["SITE_USERS"].get(name) == password else None

    DockerRegistry(auth=BasicAuth(verify)).init_app(app)
    client = webtest.TestApp(app)
    assert client.get("/v2/", status=401).headers["WWW-Authenticate"].startswith("Basic ")
    client.authorization = ("Basic", ("alice", "pw"))
    assert client.get("/v2/").status_int == 200
    assert client.post("/v2/a/blobs/uploads/").status_int == 202  # not the config's ReadOnly
    assert seen and set(seen) == {"site"}
    client.authorization = ("Basic", ("alice", "bad"))
    assert client.get("/v2/", status=401)


def test_missing_root_names_the_config_key() -> None:
    with pytest.raises(ConfigurationError, match="DOCKER_REGISTRY_ROOT"):
        DockerRegistry().init_app(Flask("site"))


def test_max_manifest_size_from_config(tmp_path: Path) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_MAX_MANIFEST_SIZE="1K")
    DockerRegistry().init_app(app)
    client = webtest.TestApp(app)
    big = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"' + b"a" * 2000 + b'"}'
    response = client.put("/v2/a/manifests/v1", params=big, status="*",
                          content_type="application/vnd.oci.image.manifest.v1+json")
    assert response.status_int == 413


def test_init_app_twice_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    extension = DockerRegistry()
    extension.init_app(app)
    with pytest.raises(RuntimeError):
        extension.init_app(app)


def test_one_extension_serves_two_apps_with_their_own_registries(tmp_path: Path) -> None:
    extension = DockerRegistry()
    first, second = make_app(tmp_path / "a"), make_app(tmp_path / "b")
    assert extension.init_app(first) is not extension.init_app(second)


# -- signals (blinker, as flask.signals) ------------------------------------------------------


def _push_blob(client: webtest.TestApp, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data, content_type="application/octet-stream",
                status=201)
    return digest


def test_signals_carry_the_event_with_the_app_as_sender_in_an_app_context(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    DockerRegistry().init_app(app)
    client = webtest.TestApp(app)
    received: list[tuple[str, object, Event, str]] = []

    def receiver(name: str) -> Any:
        def receive(sender: object, event: Event, **extra: Any) -> None:
            received.append((name, sender, event, current_app.name))  # an app context is pushed
        return receive

    on_push, on_pull, on_delete, on_mount = (receiver(n) for n in ("push", "pull", "delete", "mount"))
    with registry_push.connected_to(on_push, app), registry_pull.connected_to(on_pull, app), \
            registry_delete.connected_to(on_delete, app), registry_mount.connected_to(on_mount, app):
        digest = _push_blob(client, "team/app", b"layer")
        client.get(f"/v2/team/app/blobs/{digest}")
        client.post(f"/v2/team/copy/blobs/uploads/?mount={digest}&from=team/app", status=201)
        client.delete(f"/v2/team/app/blobs/{digest}", status=202)
    assert [(name, sender, e.action, e.repository, e.digest, site) for name, sender, e, site in received] == [
        ("push", app, "push", "team/app", digest, "site"),
        ("pull", app, "pull", "team/app", digest, "site"),
        ("mount", app, "mount", "team/copy", digest, "site"),
        ("delete", app, "delete", "team/app", digest, "site"),
    ]
    assert received[2][2].from_repository == "team/app"


def test_signals_of_one_app_do_not_reach_receivers_of_another(tmp_path: Path) -> None:
    extension = DockerRegistry()
    first, second = make_app(tmp_path / "a"), make_app(tmp_path / "b")
    extension.init_app(first)
    extension.init_app(second)
    got: list[object] = []
    with registry_push.connected_to(lambda sender, event, **extra: got.append(sender), second):
        _push_blob(webtest.TestApp(first), "team/app", b"layer")
        assert got == []
        _push_blob(webtest.TestApp(second), "team/app", b"layer")
    assert got == [second]


def test_a_failing_receiver_is_logged_and_the_push_succeeds(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(tmp_path)
    DockerRegistry().init_app(app)

    def broken(sender: object, event: Event, **extra: Any) -> None:
        raise RuntimeError("receiver bug")

    with registry_push.connected_to(broken, app), caplog.at_level(logging.ERROR):
        _push_blob(webtest.TestApp(app), "team/app", b"layer")  # 201
    assert any(r.exc_info and "receiver bug" in str(r.exc_info[1]) for r in caplog.records)


def test_without_receivers_no_events_are_built(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    registry = DockerRegistry().init_app(app)
    assert registry.events.active is False
    with registry_pull.connected_to(lambda sender, **extra: None, app):
        assert registry.events.active is True
