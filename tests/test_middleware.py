"""RegistryMiddleware: which paths reach the registry, what it sees of them, and what the host keeps.

The registry lives at ``/v2/`` of the host root (Docker Registry HTTP API V2, "API Version
Check": clients call ``GET /v2/``); every other path must reach the host site untouched.
"""

from __future__ import annotations

import hashlib
import io
from typing import Any, Callable, Iterable

import pytest
import webtest
from flask import Flask, abort, session
from hypothesis import given, strategies as st
from webob import Request as WebObRequest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from docker_registry_wsgi.middleware import RegistryMiddleware, is_registry_path, mounted_environ

StartResponse = Callable[..., Any]


class Recorder:
    """A WSGI app that keeps the environ it was called with and answers with a marker."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.calls.append(environ)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [self.name.encode()]

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1]


class BodyDigest:
    """A stand-in registry that reads ``wsgi.input`` itself, in bounded pieces, and hashes it."""

    def __init__(self) -> None:
        self.inputs: list[Any] = []

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        self.inputs.append(stream)
        length = environ.get("CONTENT_LENGTH")
        remaining = int(length) if length else None
        digest = hashlib.sha256()
        while remaining is None or remaining > 0:
            chunk = stream.read(65536 if remaining is None else min(65536, remaining))
            if not chunk:
                break
            digest.update(chunk)
            if remaining is not None:
                remaining -= len(chunk)
        start_response("202 Accepted", [("Content-Type", "text/plain")])
        return [digest.hexdigest().encode()]


@pytest.fixture
def host() -> Recorder:
    return Recorder("host")


@pytest.fixture
def registry() -> Recorder:
    return Recorder("registry")


@pytest.fixture
def client(host: Recorder, registry: Recorder) -> webtest.TestApp:
    return webtest.TestApp(RegistryMiddleware(host, registry))


@pytest.mark.parametrize(
    ("path", "path_info"),
    [
        ("/v2", ""),
        ("/v2/", "/"),
        ("/v2/_catalog", "/_catalog"),
        ("/v2/library/alpine/manifests/latest", "/library/alpine/manifests/latest"),
        ("/v2/a/b/c/blobs/uploads/", "/a/b/c/blobs/uploads/"),
        ("/v2//", "//"),
    ],
)
def test_registry_paths_reach_the_registry_mounted_at_v2(
    client: webtest.TestApp, host: Recorder, registry: Recorder, path: str, path_info: str
) -> None:
    response = client.get(path)
    assert response.text == "registry"
    assert (registry.last["SCRIPT_NAME"], registry.last["PATH_INFO"]) == ("/v2", path_info)
    assert host.calls == []


@pytest.mark.parametrize(
    "path", ["/", "/v2x", "/v2x/y", "/v20/library/alpine", "/v", "/V2/", "/static/app.css", "/x/v2/", "/v3/"]
)
def test_other_paths_reach_the_host_untouched(
    client: webtest.TestApp, host: Recorder, registry: Recorder, path: str
) -> None:
    response = client.get(path)
    assert response.text == "host"
    assert (host.last["SCRIPT_NAME"], host.last["PATH_INFO"]) == ("", path)
    assert registry.calls == []


def test_query_string_and_method_reach_the_registry(client: webtest.TestApp, registry: Recorder) -> None:
    client.delete("/v2/a/manifests/sha256:00?x=1")
    assert registry.last["REQUEST_METHOD"] == "DELETE"
    assert registry.last["QUERY_STRING"] == "x=1"
    assert registry.last["PATH_INFO"] == "/a/manifests/sha256:00"


@pytest.mark.parametrize(
    ("raw", "target", "script_name", "path_info"),
    [
        # The WSGI server decodes PATH_INFO; routing is on the decoded path, as for any WSGI app.
        ("/v2/a%2Fb/tags/list", "registry", "/v2", "/a/b/tags/list"),
        ("/%76%32/", "registry", "/v2", "/"),
        ("/v2%2F_catalog", "registry", "/v2", "/_catalog"),
        ("/v2%78", "host", "", "/v2x"),
        # Non-ASCII arrives as latin-1-decoded bytes (PEP 3333) and must pass through as is.
        ("/caf%C3%A9", "host", "", "/caf\u00c3\u00a9"),
        ("/v2/caf%C3%A9/tags/list", "registry", "/v2", "/caf\u00c3\u00a9/tags/list"),
        ("/static/a%20b.css", "host", "", "/static/a b.css"),
    ],
)
def test_encoded_paths_are_routed_on_the_decoded_path(
    client: webtest.TestApp,
    host: Recorder,
    registry: Recorder,
    raw: str,
    target: str,
    script_name: str,
    path_info: str,
) -> None:
    assert client.get(raw).text == target
    seen = (registry if target == "registry" else host).last
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (script_name, path_info)


def test_the_host_gets_the_servers_environ_object_and_the_registry_a_copy(
    client: webtest.TestApp, host: Recorder, registry: Recorder
) -> None:
    app = RegistryMiddleware(host, registry)
    outer = WebObRequest.blank("/v2/a/tags/list").environ
    before = dict(outer)
    app(outer, lambda status, headers, exc_info=None: None)
    assert outer == before  # the server's access log still sees /v2/a/tags/list
    assert registry.last is not outer
    page = WebObRequest.blank("/page").environ
    app(page, lambda status, headers, exc_info=None: None)
    assert host.last is page


def test_a_site_under_a_prefix_serves_the_registry_below_that_prefix(
    client: webtest.TestApp, host: Recorder, registry: Recorder
) -> None:
    client.get("/v2/_catalog", extra_environ={"SCRIPT_NAME": "/site"})
    assert (registry.last["SCRIPT_NAME"], registry.last["PATH_INFO"]) == ("/site/v2", "/_catalog")
    client.get("/v2x", extra_environ={"SCRIPT_NAME": "/site"})
    assert (host.last["SCRIPT_NAME"], host.last["PATH_INFO"]) == ("/site", "/v2x")


def test_request_body_reaches_the_registry_unread(host: Recorder) -> None:
    body = bytes(range(256)) * 8192 + b"tail"  # 2 MiB and a bit
    registry = BodyDigest()
    client = webtest.TestApp(RegistryMiddleware(host, registry))
    response = client.put("/v2/a/blobs/uploads/u1?digest=x", params=body, content_type="application/octet-stream")
    assert response.status_int == 202
    assert response.text == hashlib.sha256(body).hexdigest()


def test_chunked_body_without_content_length_reaches_the_registry_unread(host: Recorder) -> None:
    body = b"0123456789abcdef" * 70000
    stream = io.BytesIO(body)
    registry = BodyDigest()
    request = WebObRequest.blank("/v2/a/blobs/uploads/u1", method="PATCH")
    request.environ.update(
        {"wsgi.input": stream, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"}
    )
    request.environ.pop("CONTENT_LENGTH", None)
    response = request.get_response(RegistryMiddleware(host, registry))
    assert response.text == hashlib.sha256(body).hexdigest()
    assert registry.inputs == [stream]  # the server's own stream object, not a wrapper or a copy


def test_extra_apps_are_mounted_beside_the_registry(host: Recorder, registry: Recorder) -> None:
    token = Recorder("token")
    client = webtest.TestApp(RegistryMiddleware(host, registry, extra={"/token": token}))
    assert client.get("/token").text == "token"
    assert (token.last["SCRIPT_NAME"], token.last["PATH_INFO"]) == ("/token", "")
    assert client.get("/token/refresh").text == "token"
    assert client.get("/tokens").text == "host"
    assert client.get("/v2/").text == "registry"


@pytest.mark.parametrize("prefix", ["token", "/token/", "/v2"])
def test_bad_or_duplicate_mount_points_are_refused(host: Recorder, registry: Recorder, prefix: str) -> None:
    with pytest.raises(ValueError):
        RegistryMiddleware(host, registry, extra={prefix: Recorder("x")})


@given(st.text(alphabet="/v2x0a%.", max_size=12), st.sampled_from(["", "/site", "/a/b"]))
def test_routing_loses_no_part_of_the_path(path: str, script_name: str) -> None:
    host, registry = Recorder("host"), Recorder("registry")
    app = RegistryMiddleware(host, registry)
    environ = {"PATH_INFO": path, "SCRIPT_NAME": script_name, "REQUEST_METHOD": "GET"}
    app(environ, lambda status, headers, exc_info=None: None)
    seen = registry.calls or host.calls
    assert len(registry.calls + host.calls) == 1
    assert bool(registry.calls) == (path == "/v2" or path.startswith("/v2/"))
    assert seen[0]["SCRIPT_NAME"] + seen[0]["PATH_INFO"] == script_name + path


@pytest.mark.parametrize("path", ["/v2", "/v2/", "/v2/a/b/tags/list", "/v2x", "/v20/a", "/"])
def test_same_split_as_werkzeug_dispatcher_middleware(path: str) -> None:
    """The documented alternative, ``DispatcherMiddleware(site, {"/v2": registry})``, agrees."""
    ours_host, ours_registry = Recorder("host"), Recorder("registry")
    theirs_host, theirs_registry = Recorder("host"), Recorder("registry")
    ours = webtest.TestApp(RegistryMiddleware(ours_host, ours_registry))
    theirs = webtest.TestApp(DispatcherMiddleware(theirs_host, {"/v2": theirs_registry}))
    assert ours.get(path).text == theirs.get(path).text
    ours_seen = (ours_registry.calls or ours_host.calls)[0]
    theirs_seen = (theirs_registry.calls or theirs_host.calls)[0]
    assert (ours_seen["SCRIPT_NAME"], ours_seen["PATH_INFO"]) == (theirs_seen["SCRIPT_NAME"], theirs_seen["PATH_INFO"])


def test_mounted_environ_moves_the_prefix_into_script_name() -> None:
    environ = {"SCRIPT_NAME": "/site", "PATH_INFO": "/v2/a", "X": 1}
    assert mounted_environ(environ, "/v2") == {"SCRIPT_NAME": "/site/v2", "PATH_INFO": "/a", "X": 1}
    assert environ["PATH_INFO"] == "/v2/a"


@pytest.mark.parametrize(("path", "expected"), [("/v2", True), ("/v2/", True), ("/v2x", False), ("/v20/", False), ("", False)])
def test_is_registry_path(path: str, expected: bool) -> None:
    assert is_registry_path(path) is expected


# -- a real Flask host: its sessions, hooks and error handlers are unaffected -------------------


def make_flask_host() -> tuple[Flask, list[str]]:
    """A Flask site with a session login, a before_request hook and its own 404 page."""
    app = Flask("host_site")
    app.secret_key = "test"
    hooked: list[str] = []

    @app.before_request
    def count() -> None:
        from flask import request

        hooked.append(request.path)

    @app.route("/login/<name>")
    def login(name: str) -> str:
        session["user"] = name
        return "ok"

    @app.route("/whoami")
    def whoami() -> str:
        return session.get("user", "nobody")

    @app.route("/boom")
    def boom() -> str:
        abort(418)

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        return "site's own 404 page", 404

    @app.errorhandler(418)
    def teapot(error: Exception) -> tuple[str, int]:
        return "site's own teapot", 418

    return app, hooked


def test_flask_host_sessions_hooks_and_error_handlers_are_unaffected() -> None:
    app, hooked = make_flask_host()
    registry = Recorder("registry")
    app.wsgi_app = RegistryMiddleware(app.wsgi_app, registry)  # type: ignore[method-assign]
    client = webtest.TestApp(app)

    client.get("/login/alice")
    assert client.get("/v2/").text == "registry"
    assert client.get("/v2/a/tags/list").text == "registry"
    assert client.get("/whoami").text == "alice"  # the session cookie survived registry requests
    assert "HTTP_COOKIE" in registry.last  # the registry sees the request as sent, cookie and all

    missing = client.get("/v2x", status=404)
    assert missing.text == "site's own 404 page"
    assert client.get("/v20/a/tags/list", status=404).text == "site's own 404 page"
    assert client.get("/boom", status=418).text == "site's own teapot"
    assert hooked == ["/login/alice", "/whoami", "/v2x", "/v20/a/tags/list", "/boom"]  # never /v2/...
