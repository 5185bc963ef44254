"""RegistryClient (docker_registry_wsgi.testing.client) against the bare Registry, a Flask site with
the registry mounted under a prefix and an auth hook, and apps that break PEP 3333's close().

Spec references: OCI Distribution Spec v1.1 ("Pushing blobs": monolithic POST then PUT, single
POST, chunked PATCH with ``Content-Range`` and ``OCI-Chunk-Min-Length``; "Pulling blobs" with
``Range``; "Listing tags" with ``Link``; "Deleting"; "Error Codes") and PEP 3333 (the server
calls the iterable's ``close()`` however much of it was read).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request
from werkzeug.wsgi import ClosingIterator

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.contrib.flask import DockerRegistry
from docker_registry_wsgi.errors import Denied, Unauthorized
from docker_registry_wsgi.storage import MemoryStorage
from docker_registry_wsgi.testing import (
    RegistryClient,
    Response,
    UnclosedResponse,
    UnexpectedStatus,
    assert_oci_error,
)
from docker_registry_wsgi.testing.client import OCI_INDEX, OCI_MANIFEST, sha256_digest

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
NAME = "team/app"


class Recorder:
    """A WSGI middleware that records each request's method, path, headers and body size."""

    def __init__(self, app: WSGIApp) -> None:
        self.app = app
        self.requests: list[tuple[str, str, dict[str, str], int | None]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {k[5:].replace("_", "-").title(): v for k, v in environ.items() if k.startswith("HTTP_")}
        length = environ.get("CONTENT_LENGTH")
        self.requests.append((environ["REQUEST_METHOD"], environ.get("SCRIPT_NAME", "") + environ["PATH_INFO"],
                              headers, int(length) if length else None))
        return self.app(environ, start_response)

    def of(self, method: str) -> list[tuple[str, str, dict[str, str], int | None]]:
        return [r for r in self.requests if r[0] == method]


class MinChunkStorage(MemoryStorage):
    """Memory storage that asks for chunks of at least 4 KiB (S3 asks for 5 MiB)."""

    min_chunk_size = 4096


@pytest.fixture
def registry() -> Registry:
    return Registry(storage=MemoryStorage())


@pytest.fixture
def recorder(registry: Registry) -> Recorder:
    return Recorder(registry)


@pytest.fixture
def client(recorder: Recorder) -> RegistryClient:
    return RegistryClient(recorder)


def payload(size: int, seed: int = 0) -> bytes:
    """``size`` deterministic bytes that do not repeat with a short period."""
    out, counter = bytearray(), 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}-{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


# -- blobs -------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, requests", [
    ("monolithic", ["POST", "PUT"]),
    ("single-post", ["POST"]),
    ("chunked", ["POST", "PATCH", "PATCH", "PATCH", "PUT"]),
    ("streamed", ["POST", "PATCH", "PUT"]),
])
def test_push_blob_modes_round_trip(client: RegistryClient, recorder: Recorder, mode: str,
                                    requests: list[str]) -> None:
    data = payload(250_000)
    digest = client.push_blob(NAME, data, mode=mode, chunk_size=100_000)  # type: ignore[arg-type]
    assert digest == sha256_digest(data)
    assert [r[0] for r in recorder.requests] == requests
    assert client.pull_blob(NAME, digest) == data
    assert client.blob_exists(NAME, digest)


def test_chunked_upload_sends_content_ranges_in_order(client: RegistryClient, recorder: Recorder) -> None:
    client.push_blob(NAME, payload(250_000), mode="chunked", chunk_size=100_000)
    patches = recorder.of("PATCH")
    assert [(r[2]["Content-Range"], r[3]) for r in patches] == [
        ("0-99999", 100_000), ("100000-199999", 100_000), ("200000-249999", 50_000)]
    (put,) = recorder.of("PUT")
    assert put[3] in (None, 0)  # the bytes all went in the PATCHes


def test_streamed_upload_has_no_length(client: RegistryClient, recorder: Recorder) -> None:
    client.push_blob(NAME, payload(70_000), mode="streamed")
    (patch,) = recorder.of("PATCH")
    assert patch[2]["Transfer-Encoding"] == "chunked" and patch[3] is None


def test_chunks_are_at_least_the_minimum_the_registry_asks_for() -> None:
    recorder = Recorder(Registry(storage=MinChunkStorage()))
    client = RegistryClient(recorder)
    data = payload(10_000)
    digest = client.push_blob(NAME, data, mode="chunked", chunk_size=1000)
    assert [r[3] for r in recorder.of("PATCH")] == [4096, 4096, 1808]
    assert client.pull_blob(NAME, digest) == data


def test_ranged_pull(client: RegistryClient) -> None:
    data = payload(3 * 1024 * 1024 + 7)
    digest = client.push_blob(NAME, data)
    start = 1024 * 1024 - 3
    assert client.pull_blob(NAME, digest, byte_range=(start, start + 9)) == data[start:start + 10]


def test_mount_from_another_repository(client: RegistryClient, recorder: Recorder) -> None:
    digest = client.push_blob("team/base", b"shared layer")
    assert client.mount_blob(NAME, digest, "team/base") is True
    assert client.pull_blob(NAME, digest) == b"shared layer"

    unknown = sha256_digest(b"nowhere")
    assert client.mount_blob(NAME, unknown, "team/base") is False
    session = recorder.of("DELETE")[-1][1]  # the session opened instead was cancelled
    assert_oci_error(client.get(session), "BLOB_UPLOAD_UNKNOWN", 404)


def test_delete_blob(client: RegistryClient) -> None:
    digest = client.push_blob(NAME, b"short-lived")
    client.delete_blob(NAME, digest)
    assert not client.blob_exists(NAME, digest)
    assert_oci_error(client.get(f"{NAME}/blobs/{digest}"), "BLOB_UNKNOWN", 404)


# -- images, tags, deletes ---------------------------------------------------------------------


def test_image_and_index_of_two_round_trip(client: RegistryClient) -> None:
    amd64 = client.push_image(NAME, None, layers=[b"a1", payload(2_000_000)], platform=("linux", "amd64"),
                              mode="chunked", chunk_size=512 * 1024)
    arm64 = client.push_image(NAME, None, layers=[b"b1"], platform=("linux", "arm64"))
    index = client.push_index(NAME, "v1", [amd64, arm64])

    assert amd64.document["config"]["digest"] in amd64.blobs and len(amd64.blobs) == 3
    assert [m["platform"] for m in index.document["manifests"]] == [
        {"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]
    pulled = client.pull_image(NAME, "v1")
    assert (pulled.digest, pulled.media_type) == (index.digest, OCI_INDEX)
    assert [(c.digest, c.media_type) for c in pulled.children] == [
        (amd64.digest, OCI_MANIFEST), (arm64.digest, OCI_MANIFEST)]
    assert [c.blobs for c in pulled.children] == [amd64.blobs, arm64.blobs]
    assert client.pull_image(NAME, amd64.digest).body == amd64.body


def test_tags_follow_pagination(client: RegistryClient, recorder: Recorder) -> None:
    image = client.push_image(NAME, "c")
    for tag in ("a", "b"):
        client.push_manifest(NAME, tag, image.body, image.media_type)
    recorder.requests.clear()
    assert client.tags(NAME, page_size=1) == ["a", "b", "c"]
    assert len(recorder.of("GET")) >= 3  # one page per tag: the Link header was followed
    assert client.tags(NAME) == ["a", "b", "c"]
    assert client.catalog(page_size=1) == [NAME]


def test_delete_tag_and_manifest(client: RegistryClient) -> None:
    image = client.push_image(NAME, "v1")
    client.push_manifest(NAME, "v2", image.body, image.media_type)
    client.delete_manifest(NAME, "v1")
    assert client.tags(NAME) == ["v2"]
    client.delete_manifest(NAME, image.digest)
    assert client.tags(NAME) == []
    assert_oci_error(client.get(f"{NAME}/manifests/v2"), "MANIFEST_UNKNOWN", 404)


def test_unexpected_status_carries_the_response(client: RegistryClient) -> None:
    with pytest.raises(UnexpectedStatus) as raised:
        client.pull_image(NAME, "missing")
    assert raised.value.response.status == 404
    assert_oci_error(raised.value.response, "MANIFEST_UNKNOWN", 404)
    assert "404" in str(raised.value) and "MANIFEST_UNKNOWN" in str(raised.value)


# -- assert_oci_error --------------------------------------------------------------------------


def test_assert_oci_error_checks_code_status_and_body(client: RegistryClient) -> None:
    missing = client.get(f"{NAME}/manifests/missing")
    assert assert_oci_error(missing, "MANIFEST_UNKNOWN", 404)["code"] == "MANIFEST_UNKNOWN"
    with pytest.raises(AssertionError, match="expected BLOB_UNKNOWN"):
        assert_oci_error(missing, "BLOB_UNKNOWN", 404)
    with pytest.raises(AssertionError, match="expected 400"):
        assert_oci_error(missing, "MANIFEST_UNKNOWN", 400)
    assert assert_oci_error(client.head(f"{NAME}/manifests/missing"), "MANIFEST_UNKNOWN", 404) == {}
    bad_name = client.get("Not_Lower/tags/list")
    assert_oci_error(bad_name, "NAME_INVALID", 400)


@pytest.mark.parametrize("body, content_type, message", [
    (b"<p>not found</p>", "text/html", "Content-Type"),
    (b'{"errors": []}', "application/json", "no errors list"),
    (b'{"errors": [{"code": "DENIED", "extra": 1}]}', "application/json", "unknown error fields"),
])
def test_assert_oci_error_refuses_other_bodies(body: bytes, content_type: str, message: str) -> None:
    from werkzeug.datastructures import Headers

    response = Response("GET", "/v2/x", 403, Headers({"Content-Type": content_type}), body)
    with pytest.raises(AssertionError, match=message):
        assert_oci_error(response, "DENIED", 403)


# -- a site: a Flask app with the registry, an auth hook, mounted under a prefix ---------------


class TokenAuth:
    """A site's hook: ``Bearer <token>`` of a known user; ``viewer`` may only pull."""

    tokens = {"t-admin": "admin", "t-viewer": "viewer"}

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        header = request.headers.get("Authorization", "")
        user = self.tokens.get(header.removeprefix("Bearer "))
        if user is None:
            raise Unauthorized(challenge='Bearer realm="site"')
        if user == "viewer" and any(access.actions - {"pull"} for access in needed):
            raise Denied()
        return user


@pytest.fixture
def site() -> WSGIApp:
    """A Flask site with the registry at /v2/, itself mounted at /site (DispatcherMiddleware)."""
    flask_app = Flask("site")

    @flask_app.route("/")
    def home() -> str:
        return "home"

    DockerRegistry(flask_app, storage=MemoryStorage(), auth=TokenAuth())
    return DispatcherMiddleware(Flask("root"), {"/site": flask_app})


def test_site_under_a_prefix_with_an_auth_hook(site: WSGIApp) -> None:
    admin = RegistryClient(site, "/site/v2/", auth="Bearer t-admin")
    image = admin.push_image(NAME, "v1", layers=[payload(300_000)], mode="chunked", chunk_size=128 * 1024)
    start = admin.post(f"{NAME}/blobs/uploads/", expect=202)
    assert urlsplit(start.headers["Location"]).path.startswith(f"/site/v2/{NAME}/blobs/uploads/")
    admin.delete(start.headers["Location"], expect=204)

    viewer = RegistryClient(site, "/site/v2", auth="Bearer t-viewer")
    assert viewer.pull_image(NAME, "v1").children == []
    assert viewer.pull_image(NAME, "v1").blobs == image.blobs
    with pytest.raises(UnexpectedStatus) as refused:
        viewer.delete_manifest(NAME, "v1")
    assert_oci_error(refused.value.response, "DENIED", 403)

    anonymous = RegistryClient(site, "/site/v2/")
    challenged = anonymous.get(f"{NAME}/tags/list")
    assert_oci_error(challenged, "UNAUTHORIZED", 401)
    assert challenged.headers["WWW-Authenticate"] == 'Bearer realm="site"'
    # A request's own auth wins over the client's.
    assert anonymous.get(f"{NAME}/tags/list", auth="Bearer t-viewer").json()["tags"] == ["v1"]
    # The site's own pages are still the site's.
    assert anonymous.get("/site/").body == b"home"


def test_flask_example_site_in_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """examples/flask_site, its users and its role policy, with no server."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "examples"))
    from flask_site import create_app, users

    app = create_app({"SITE_DATABASE": str(tmp_path / "users.sqlite3"),
                      "DOCKER_REGISTRY_ROOT": str(tmp_path / "registry")})
    with app.app_context():
        users.add_user("pat", "pw-1", "publisher")
        users.add_user("rita", "pw-2", "reader")
    pat, rita = RegistryClient(app, auth=("pat", "pw-1")), RegistryClient(app, auth=("rita", "pw-2"))
    image = pat.push_image(NAME, "v1", layers=[payload(2 * 1024 * 1024)], mode="streamed")
    assert rita.pull_image(NAME, "v1").blobs == image.blobs
    with pytest.raises(UnexpectedStatus) as refused:
        rita.push_blob(NAME, b"x")
    assert_oci_error(refused.value.response, "DENIED", 403)
    # Filesystem storage serves blobs through wsgi.file_wrapper: closing a partial read is checked.
    with pat.open_blob(NAME, image.document["layers"][0]["digest"]) as download:
        assert download.read(5) == image.blobs[image.document["layers"][0]["digest"]][:5]
    assert download.files_wrapped == 1 and download.closed


# -- close() -----------------------------------------------------------------------------------


def not_closing(app: WSGIApp) -> WSGIApp:
    """A middleware that iterates the inner response in a generator: close() is not forwarded."""
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        for chunk in app(environ, start_response):
            yield chunk
    return middleware


def closing(app: WSGIApp) -> WSGIApp:
    """The same middleware done right: werkzeug's ClosingIterator forwards close()."""
    def middleware(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        inner = app(environ, start_response)
        return ClosingIterator((chunk for chunk in inner), getattr(inner, "close", None))
    return middleware


@pytest.mark.parametrize("read", [0, 10, -1])
def test_close_check_catches_an_app_that_does_not_close(registry: Registry, read: int) -> None:
    digest = RegistryClient(registry).push_blob(NAME, payload(3 * 1024 * 1024))
    leaky = RegistryClient(not_closing(registry))
    with pytest.raises(UnclosedResponse, match="were not closed"):
        with leaky.open_blob(NAME, digest) as download:
            download.read(read)
    with pytest.raises(UnclosedResponse):
        leaky.pull_blob(NAME, digest)


@pytest.mark.parametrize("read", [0, 10, -1])
def test_close_check_passes_an_app_that_closes(registry: Registry, read: int) -> None:
    data = payload(3 * 1024 * 1024)
    digest = RegistryClient(registry).push_blob(NAME, data)
    for app in (registry, closing(registry)):
        with RegistryClient(app).open_blob(NAME, digest) as download:
            assert download.read(read) == (data if read < 0 else data[:read])
        assert RegistryClient(app).pull_blob(NAME, digest) == data


class CountingBody:
    """A response iterable that counts its close() calls and how many chunks were taken."""

    def __init__(self, chunks: int) -> None:
        self.left = chunks
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.left:
            self.left -= 1
            yield b"x" * 1000

    def close(self) -> None:
        self.closed += 1


def test_client_closes_the_iterable_once_however_much_is_read() -> None:
    bodies: list[CountingBody] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        bodies.append(CountingBody(1000))
        return bodies[-1]

    client = RegistryClient(app)
    with client.stream("GET", "x") as partly:
        assert partly.read(1500) == b"x" * 1500
    with client.stream("GET", "x"):
        pass
    assert len(client.get("x").body) == 1_000_000
    assert [(b.closed, b.left) for b in bodies] == [(1, 998), (1, 999), (1, 0)]


def test_a_generator_app_gets_start_response_before_the_headers_are_read() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("202 Accepted", [("X-Late", "yes")])
        yield b"body"

    response = RegistryClient(app).post("x", expect=202)
    assert (response.headers["X-Late"], response.body) == ("yes", b"body")


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("200 OK", [])
        start_response("500 Internal Server Error", [])
        return [b""]

    with pytest.raises(AssertionError, match="start_response called twice"):
        RegistryClient(app).get("x")


def test_base_must_be_a_path() -> None:
    with pytest.raises(ValueError):
        RegistryClient(Registry(storage=MemoryStorage()), "v2/")

