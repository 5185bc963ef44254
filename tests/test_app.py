"""The WSGI application as a whole: routing (404/405 as OCI JSON), root and mounted use with the
right ``Location`` headers, the API version header on every response, hostile input (never a 500,
never a write outside the storage root), and the access the auth hook is asked for.

Specs: oci-distribution-spec.md "API", "Endpoints", "Error Codes"; docker-registry-http-api-v2.md
"API Version Check" (``Docker-Distribution-API-Version`` on every response).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import quote

import pytest
import webtest
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wrappers import Request

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import DELETE, PULL, PUSH, Access, ReadOnly
from docker_registry_wsgi.errors import Denied, Unauthorized
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage

from tests.handlers import (
    RecordingAuth,
    OCI_MANIFEST,
    RegistryClient,
    assert_api_version,
    assert_error,
    path_of,
    raw_call,
    sha256,
    with_query,
)

DATA = b"some layer bytes" * 8


def _host_site(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"host site"]


# -- routing -----------------------------------------------------------------------------------


@pytest.fixture
def app() -> webtest.TestApp:
    return webtest.TestApp(Registry(storage=MemoryStorage()))


@pytest.mark.parametrize("path", [
    "/v2/lib/app", "/v2/lib/app/", "/v2/lib/app/blobs", "/v2/lib/app/blobs/", "/v2/lib/app/manifests",
    "/v2/lib/app/manifests/", "/v2/lib/app/tags", "/v2/lib/app/tags/list/extra", "/v2/_catalog/x",
    "/v2/lib/app/referrers", "/v2/lib/app/unknown/thing", "/other", "/", "/v2x", "/v20/",
    "/v1/_ping",
])
def test_unknown_endpoint_is_404_oci_json(app: webtest.TestApp, path: str) -> None:
    """oci-distribution-spec.md: Error Codes: a path naming no endpoint is 404 with the error JSON."""
    assert_error(app.get(path, status=404), 404)
    assert_error(app.head(path, status=404), 404)


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("POST", "/v2/", {"GET", "HEAD"}),
    ("DELETE", "/v2/", {"GET", "HEAD"}),
    ("POST", "/v2/lib/app/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PATCH", "/v2/lib/app/manifests/latest", {"GET", "HEAD", "PUT", "DELETE"}),
    ("PUT", f"/v2/lib/app/blobs/{sha256(b'x')}", {"GET", "HEAD", "DELETE"}),
    ("POST", f"/v2/lib/app/blobs/{sha256(b'x')}", {"GET", "HEAD", "DELETE"}),
    ("GET", "/v2/lib/app/blobs/uploads/", {"POST"}),
    ("PATCH", "/v2/lib/app/blobs/uploads/", {"POST"}),
    ("POST", "/v2/lib/app/blobs/uploads/abcdefghijklmnopqrstuv", {"GET", "PATCH", "PUT", "DELETE"}),
    ("PUT", "/v2/lib/app/tags/list", {"GET"}),
    ("DELETE", f"/v2/lib/app/referrers/{sha256(b'x')}", {"GET", "HEAD"}),
    ("OPTIONS", "/v2/_catalog", {"GET"}),
])
def test_wrong_method_is_405_with_allow(app: webtest.TestApp, method: str, path: str,
                                        allowed: set[str]) -> None:
    """oci-distribution-spec.md: Endpoints (end-9/end-10 list 405): 405, ``Allow``, UNSUPPORTED JSON."""
    response = app.request(path, method=method, status=405)
    assert_error(response, 405, "UNSUPPORTED")
    assert {m.strip() for m in response.headers["Allow"].split(",")} == allowed


@pytest.mark.parametrize("name", ["blobs", "manifests/x", "a/blobs/uploads", "a/tags/list",
                                  "a/manifests/b", "a/referrers/c", "_x"])
def test_names_with_endpoint_words_route_to_their_repository(name: str) -> None:
    """oci-distribution-spec.md: Pulling manifests: ``<name>`` is any match of the name regex, even
    when its components are the API's own path words."""
    valid = name != "_x"
    registry = Registry(storage=MemoryStorage())
    app = webtest.TestApp(registry)
    if not valid:
        assert_error(app.post(f"/v2/{name}/blobs/uploads/", status=400), 400, "NAME_INVALID")
        return
    client = RegistryClient(app)
    image = client.push_image(name, "v1")
    assert app.get(f"/v2/{name}/manifests/v1").body == image.body
    assert json.loads(app.get(f"/v2/{name}/tags/list").body) == {"name": name, "tags": ["v1"]}
    for digest, data in image.blobs.items():
        assert app.get(f"/v2/{name}/blobs/{digest}").body == data
    assert json.loads(app.get("/v2/_catalog").body)["repositories"] == [name]
    assert json.loads(app.get(f"/v2/{name}/referrers/{image.digest}").body)["manifests"] == []


# -- root and mounted use ----------------------------------------------------------------------


def _root(registry: Registry) -> tuple[webtest.TestApp, str]:
    return webtest.TestApp(registry), ""


def _dispatcher(registry: Registry) -> tuple[webtest.TestApp, str]:
    return webtest.TestApp(DispatcherMiddleware(_host_site, {"/v2": registry})), ""


def _dispatcher_below_site(registry: Registry) -> tuple[webtest.TestApp, str]:
    """A site that itself lives at ``/site``: the registry is at ``/site/v2``."""
    site = DispatcherMiddleware(_host_site, {"/v2": registry})
    return webtest.TestApp(site, extra_environ={"SCRIPT_NAME": "/site"}), "/site"


MODES = {"root": _root, "dispatcher": _dispatcher, "dispatcher-below-site": _dispatcher_below_site}


@pytest.mark.parametrize("mode", MODES)
def test_locations_right_in_root_and_mounted_mode(mode: str) -> None:
    """Root app (``PATH_INFO=/v2/...``) and mounted (``SCRIPT_NAME=/v2``, werkzeug's
    DispatcherMiddleware): every ``Location`` and ``Link`` points where the client must go next,
    and following them works (oci-distribution-spec.md: Pushing a blob in chunks, Pushing Manifests,
    Listing Tags)."""
    registry = Registry(storage=MemoryStorage())
    app, prefix = MODES[mode](registry)
    base = f"http://localhost{prefix}/v2"

    def follow(url: str) -> str:
        path = path_of(url)
        assert path.startswith(prefix + "/v2/"), url
        return path[len(prefix):]

    assert app.get("/v2/").status_int == 200
    if mode != "root":
        assert app.get("/index.html").body == b"host site"
    response = app.post("/v2/lib/app/blobs/uploads/", status=202)
    upload_id = response.headers["Docker-Upload-UUID"]
    assert response.headers["Location"] == f"{base}/lib/app/blobs/uploads/{upload_id}"
    response = app.patch(follow(response.headers["Location"]), DATA[:10], status=202)
    assert response.headers["Location"] == f"{base}/lib/app/blobs/uploads/{upload_id}"
    response = app.get(follow(response.headers["Location"]), status=204)
    assert response.headers["Location"] == f"{base}/lib/app/blobs/uploads/{upload_id}"
    patched = app.patch(follow(response.headers["Location"]), DATA[5:8],
                        headers={"Content-Range": "5-7"}, status=416)
    assert patched.headers["Location"] == f"{base}/lib/app/blobs/uploads/{upload_id}"
    digest = sha256(DATA)
    response = app.put(with_query(follow(response.headers["Location"]), digest=digest), DATA[10:], status=201)
    assert response.headers["Location"] == f"{base}/lib/app/blobs/{digest}"
    assert app.get(follow(response.headers["Location"])).body == DATA

    response = app.post(f"/v2/lib/copy/blobs/uploads/?mount={digest}&from=lib/app", status=201)
    assert response.headers["Location"] == f"{base}/lib/copy/blobs/{digest}"
    response = app.post(f"/v2/lib/app/blobs/uploads/?digest={sha256(b'one')}", b"one", status=201)
    assert response.headers["Location"] == f"{base}/lib/app/blobs/{sha256(b'one')}"

    client = RegistryClient(app)
    image = client.push_image("lib/app", "v1")
    assert image.response is not None
    assert image.response.headers["Location"] == f"{base}/lib/app/manifests/{image.digest}"
    assert app.get(follow(image.response.headers["Location"])).body == image.body
    for tag in ("v2", "v3"):
        client.put_manifest("lib/app", tag, image.body, OCI_MANIFEST)
    response = app.get("/v2/lib/app/tags/list?n=1")
    assert response.headers["Link"] == f'<{base}/lib/app/tags/list?n=1&last=v1>; rel="next"'
    response = app.get(follow(response.headers["Link"][1:].split(">")[0]))
    assert json.loads(response.body)["tags"] == ["v2"]
    response = app.get("/v2/_catalog?n=1")
    assert response.headers["Link"] == f'<{base}/_catalog?n=1&last=lib%2Fapp>; rel="next"'
    assert json.loads(app.get(follow(response.headers["Link"][1:].split(">")[0])).body) == {
        "repositories": ["lib/copy"]}


def test_mounted_chunked_patch_without_content_length() -> None:
    """PATCH with ``Transfer-Encoding: chunked`` and no ``Content-Length`` through
    DispatcherMiddleware, environ built as gunicorn builds it (``wsgi.input_terminated``)."""
    registry = Registry(storage=MemoryStorage())
    site = DispatcherMiddleware(_host_site, {"/v2": registry})
    app = webtest.TestApp(site)
    location = path_of(app.post("/v2/lib/app/blobs/uploads/", status=202).headers["Location"])
    response = raw_call(site, "PATCH", location, DATA, chunked=True)
    assert response.status == 202, response.body
    assert response.header("Range") == f"0-{len(DATA) - 1}"
    assert response.header("Location") == f"http://localhost{location}"
    response = raw_call(site, "PUT", location, b"", query=f"digest={sha256(DATA)}")
    assert response.status == 201
    assert app.get(f"/v2/lib/app/blobs/{sha256(DATA)}").body == DATA


# -- the API version header on every response --------------------------------------------------


class _BrokenStorage(MemoryStorage):
    """A backend whose reads fail unexpectedly, to reach the app's last-resort 500."""

    def read(self, key: str) -> bytes:
        raise RuntimeError("disk on fire /secret/path")


def test_unexpected_error_is_500_json_without_traceback(caplog: pytest.LogCaptureFixture) -> None:
    app = webtest.TestApp(Registry(storage=_BrokenStorage()))
    response = app.get("/v2/lib/app/manifests/latest", status=500)
    error = assert_error(response, 500, "UNKNOWN")
    assert "Traceback" not in response.text and "secret" not in response.text
    assert error["message"]
    assert any("disk on fire" in r.getMessage() or r.exc_info for r in caplog.records)
    assert_error(app.head("/v2/lib/app/manifests/latest", status=500), 500)


@pytest.mark.parametrize(("method", "path", "body", "headers"), [
    ("GET", "/v2/", b"", {}),
    ("HEAD", "/v2/", b"", {}),
    ("GET", "/v2/_catalog", b"", {}),
    ("GET", "/v2/lib/app/tags/list", b"", {}),
    ("GET", "/v2/nope/tags/list", b"", {}),
    ("GET", "/v2/lib/app/manifests/v1", b"", {}),
    ("HEAD", "/v2/lib/app/manifests/v1", b"", {}),
    ("GET", "/v2/lib/app/manifests/missing", b"", {}),
    ("PUT", "/v2/lib/app/manifests/bad", b"{", {"Content-Type": OCI_MANIFEST}),
    ("DELETE", "/v2/lib/app/manifests/missing", b"", {}),
    ("GET", f"/v2/lib/app/blobs/{sha256(DATA)}", b"", {}),
    ("GET", f"/v2/lib/app/blobs/{sha256(DATA)}", b"", {"Range": "bytes=2-5"}),
    ("GET", f"/v2/lib/app/blobs/{sha256(DATA)}", b"", {"Range": "bytes=9999-"}),
    ("HEAD", f"/v2/lib/app/blobs/{sha256(b'missing')}", b"", {}),
    ("GET", "/v2/lib/app/blobs/sha256:bad", b"", {}),
    ("POST", "/v2/lib/app/blobs/uploads/", b"", {}),
    ("POST", f"/v2/lib/app/blobs/uploads/?digest={sha256(b'x')}", b"y", {}),
    ("GET", "/v2/lib/app/blobs/uploads/unknownunknownunknown", b"", {}),
    ("GET", f"/v2/lib/app/referrers/{sha256(b'x')}", b"", {}),
    ("GET", "/v2/Bad/tags/list", b"", {}),
    ("POST", "/v2/", b"", {}),
    ("GET", "/elsewhere", b"", {}),
])
def test_every_response_has_api_version_header(method: str, path: str, body: bytes,
                                               headers: dict[str, str]) -> None:
    """docker-registry-http-api-v2.md: ``Docker-Distribution-API-Version: registry/2.0`` on every
    response, successes and errors alike, in both root and mounted use."""
    for mode in MODES:
        registry = Registry(storage=MemoryStorage())
        app, _ = MODES[mode](registry)
        client = RegistryClient(app)
        client.push_blob("lib/app", DATA)
        client.push_image("lib/app", "v1")
        if mode != "root" and not path.startswith("/v2"):
            continue
        response = app.request(path, method=method, body=body, headers=headers, status="*")
        assert response.status_int < 500, (mode, response.status, response.body)
        assert_api_version(response.headers)


# -- hostile input -----------------------------------------------------------------------------


HOSTILE_NAMES = [
    "..", "../..", "lib/../../etc", "lib/./app", "lib//app", "/lib", "lib/app/", "a/%2e%2e",
    "lib%2Fapp", "lib%2f..%2f..", "a\x00b", "\x00", "a" * 256, "a/" * 200 + "a", "a" * 10000,
    "UPPER", "lib/App", "a b", "\xe9", "\xff", "é".encode().decode("latin-1"), "a\nb", "a\\b", "-a", "a-", "a..b", "a___b", "~",
    "_catalog/x",
]
#: Names with which ``/v2/<name>/...`` matches no endpoint.
UNROUTABLE_NAMES = {"/lib", "a\nb"}


def _q(value: str) -> str:
    """``value`` (a WSGI string: bytes as latin-1) percent-encoded for a query string, so that
    the same bytes arrive."""
    return quote(value.encode("latin-1"), safe="")


def _requests(name: str) -> list[tuple[str, str, str, bytes, dict[str, str]]]:
    digest = sha256(DATA)
    return [
        ("GET", f"/v2/{name}/tags/list", "", b"", {}),
        ("GET", f"/v2/{name}/manifests/latest", "", b"", {}),
        ("HEAD", f"/v2/{name}/manifests/{digest}", "", b"", {}),
        ("PUT", f"/v2/{name}/manifests/latest", "", b"{}", {"Content-Type": OCI_MANIFEST}),
        ("DELETE", f"/v2/{name}/manifests/latest", "", b"", {}),
        ("GET", f"/v2/{name}/blobs/{digest}", "", b"", {}),
        ("DELETE", f"/v2/{name}/blobs/{digest}", "", b"", {}),
        ("POST", f"/v2/{name}/blobs/uploads/", "", b"", {}),
        ("POST", f"/v2/{name}/blobs/uploads/", f"digest={digest}", DATA, {}),
        ("POST", "/v2/lib/app/blobs/uploads/", f"mount={digest}&from={_q(name)}", b"", {}),
        ("PATCH", f"/v2/{name}/blobs/uploads/abcdefghijklmnopqrstuvwx", "", DATA, {}),
        ("PUT", f"/v2/{name}/blobs/uploads/abcdefghijklmnopqrstuvwx", f"digest={digest}", DATA, {}),
        ("GET", f"/v2/{name}/referrers/{digest}", "", b"", {}),
    ]


def _tree(folder: Path) -> dict[str, int]:
    found = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for entry in dirnames + filenames:
            path = os.path.join(dirpath, entry)
            found[os.path.relpath(path, folder)] = os.lstat(path).st_mtime_ns
    return found


@pytest.fixture
def jailed(tmp_path: Path) -> tuple[Registry, Path, Path]:
    """A filesystem registry in ``tmp_path/jail/root`` with bait files around it."""
    root = tmp_path / "jail" / "root"
    (tmp_path / "jail" / "etc").mkdir(parents=True)
    (tmp_path / "jail" / "etc" / "passwd").write_text("bait")
    (tmp_path / "outside").write_text("bait")
    registry = Registry(storage=FilesystemStorage(root))
    RegistryClient(webtest.TestApp(registry)).push_image("lib/app", "v1")
    return registry, tmp_path, root


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=lambda n: repr(n[:24]))
def test_hostile_names_are_4xx_and_write_nothing_outside_root(jailed: tuple[Registry, Path, Path],
                                                               name: str) -> None:
    """Hostile repository names (``..``, encoded slashes, NUL, overlong, bad characters) get 400
    NAME_INVALID from every endpoint (oci-distribution-spec.md "Error Codes" code-8; the name
    grammar is in "Pulling manifests"), never a 500, and nothing outside the storage root changes.

    Two names make a path that is no endpoint at all (``/v2//lib/...``, and a newline, which no
    route matches): 404 UNSUPPORTED, the registry's answer to an unknown endpoint ("Endpoints":
    404 is every endpoint's failure code).
    """
    registry, top, root = jailed
    before = {k: v for k, v in _tree(top).items() if not k.startswith("jail/root")}
    for method, path, query, body, headers in _requests(name):
        response = raw_call(registry, method, path, body, headers, query=query)
        expected = (404, "UNSUPPORTED") if name in UNROUTABLE_NAMES and path.startswith(f"/v2/{name}/") else (400, "NAME_INVALID")
        assert response.status == expected[0], (method, path[:80], response.status, response.body[:300])
        assert_api_version(response.headers)
        if method != "HEAD":
            assert response.json()["errors"][0]["code"] == expected[1], (method, path[:80], response.body[:300])
    after = {k: v for k, v in _tree(top).items() if not k.startswith("jail/root")}
    assert after == before
    assert (top / "outside").read_text() == "bait"


def test_name_length_limit(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pulling manifests (implementers note): names up to 255 characters."""
    longest = "/".join(["a" * 63] * 4)
    assert len(longest) == 255
    app.post(f"/v2/{longest}/blobs/uploads/?digest={sha256(b'x')}", b"x", status=201)
    assert_error(app.post(f"/v2/{longest}a/blobs/uploads/", status=400), 400, "NAME_INVALID")


@pytest.mark.parametrize("reference", ["..", "a/../b", "sha256:" + "0" * 64 + "/..", "%00", "\x00",
                                       "sha256:../../../../etc/passwd", "x" * 5000, "\xff", "é".encode().decode("latin-1")])
def test_hostile_references_and_digests_are_4xx(jailed: tuple[Registry, Path, Path], reference: str) -> None:
    registry, top, _ = jailed
    before = {k: v for k, v in _tree(top).items() if not k.startswith("jail/root")}
    for method, path, query in [
        ("GET", f"/v2/lib/app/manifests/{reference}", ""),
        ("PUT", f"/v2/lib/app/manifests/{reference}", ""),
        ("DELETE", f"/v2/lib/app/manifests/{reference}", ""),
        ("GET", f"/v2/lib/app/blobs/{reference}", ""),
        ("DELETE", f"/v2/lib/app/blobs/{reference}", ""),
        ("GET", f"/v2/lib/app/referrers/{reference}", ""),
        ("GET", f"/v2/lib/app/blobs/uploads/{reference}", ""),
        ("PATCH", f"/v2/lib/app/blobs/uploads/{reference}", ""),
        ("DELETE", f"/v2/lib/app/blobs/uploads/{reference}", ""),
        ("POST", "/v2/lib/app/blobs/uploads/", f"digest={_q(reference)}"),
        ("POST", "/v2/lib/app/blobs/uploads/", f"mount={_q(reference)}&from=lib/app"),
        ("PUT", f"/v2/lib/app/manifests/{sha256(b'x')}", f"tag={_q(reference)}"),
        ("GET", "/v2/lib/app/tags/list", f"n=1&last={_q(reference)}"),
        ("GET", "/v2/_catalog", f"last={_q(reference)}"),
    ]:
        response = raw_call(registry, method, path, b"{}", query=query)
        assert response.status < 500, (method, path[:80], query[:80], response.status, response.body[:300])
        assert_api_version(response.headers)
    after = {k: v for k, v in _tree(top).items() if not k.startswith("jail/root")}
    assert after == before


def test_upload_bodies_that_disagree_with_headers(jailed: tuple[Registry, Path, Path]) -> None:
    """Inverted/overlong ranges, ``Content-Length`` vs ``Content-Range``, short bodies, bogus
    lengths: 4xx each time, the session stays usable, and the blob comes out right."""
    registry, _, root = jailed
    app = webtest.TestApp(registry)
    location = path_of(app.post("/v2/lib/app/blobs/uploads/", status=202).headers["Location"])
    # oci-distribution-spec.md "Error Codes": a range that breaks the grammar of "Pushing a blob
    # in chunks" or a body cut short is BLOB_UPLOAD_INVALID (code-2); a body whose length is not
    # the range's is SIZE_INVALID (code-10). An unusable Content-Length is read as no body: 202.
    cases: list[tuple[bytes, dict[str, str], Any, int, str | None]] = [
        (DATA[:10], {"Content-Range": "9-0"}, "auto", 400, "BLOB_UPLOAD_INVALID"),
        (DATA[:10], {"Content-Range": "0-" + "9" * 25}, "auto", 400, "BLOB_UPLOAD_INVALID"),
        (DATA[:10], {"Content-Range": "0-19"}, "auto", 400, "SIZE_INVALID"),
        (DATA[:10], {"Content-Range": "0-4"}, "auto", 400, "SIZE_INVALID"),
        (DATA[:10], {}, 50, 400, "BLOB_UPLOAD_INVALID"),
        (DATA[:10], {"Content-Range": "0-49"}, 50, 400, "BLOB_UPLOAD_INVALID"),
        (DATA[:10], {}, "-1", 202, None),
        (DATA[:10], {}, "ten", 202, None),
        (DATA[:10], {"Content-Range": "18446744073709551615-18446744073709551616"}, "auto", 400, "BLOB_UPLOAD_INVALID"),
    ]
    for body, headers, length, status, code in cases:
        response = raw_call(registry, "PATCH", location, body, headers, content_length=length)
        assert response.status == status, (headers, length, response.status, response.body)
        assert_api_version(response.headers)
        if code is not None:
            assert response.json()["errors"][0]["code"] == code, (headers, length, response.body)
        status = app.get(location, status=204)
        assert status.headers["Range"] == "0-0", (headers, length)
    app.patch(location, DATA, headers={"Content-Range": f"0-{len(DATA) - 1}"}, status=202)
    app.put(with_query(location, digest=sha256(DATA)), status=201)
    assert app.get(f"/v2/lib/app/blobs/{sha256(DATA)}").body == DATA


# -- the auth hook -----------------------------------------------------------------------------


def _repo(name: str, *actions: str) -> Access:
    return Access.repository(name, *actions)


def test_auth_hook_receives_the_access_each_endpoint_needs() -> None:
    """The hook gets ``repository:<name>:<actions>`` per endpoint (pull/push/delete), the catalog as
    ``registry:catalog:*``, nothing for ``/v2/``; a mount also needs pull on ``from``; cancelling an
    upload needs push (docker-token-auth-scope.md)."""
    hook = RecordingAuth()
    app = webtest.TestApp(Registry(storage=MemoryStorage(), auth=hook))
    client = RegistryClient(app)
    image = client.push_image("src/repo", "v1")
    layer = next(d for d, data in image.blobs.items() if data == b"layer-one")
    upload = path_of(app.post("/v2/lib/app/blobs/uploads/", status=202).headers["Location"])
    hook.calls.clear()

    def needed(method: str, path: str, status: int | str = "*", **kw: Any) -> list[Access]:
        app.request(path, method=method, status=status, **kw)
        return hook.last

    assert needed("GET", "/v2/", 200) == []
    assert needed("GET", "/v2/_catalog", 200) == [Access("registry", "catalog", frozenset({"*"}))]
    assert needed("GET", "/v2/src/repo/tags/list", 200) == [_repo("src/repo", PULL)]
    assert needed("GET", "/v2/src/repo/manifests/v1", 200) == [_repo("src/repo", PULL)]
    assert needed("HEAD", "/v2/src/repo/manifests/v1", 200) == [_repo("src/repo", PULL)]
    assert needed("PUT", "/v2/src/repo/manifests/v2", 201, body=image.body,
                  headers={"Content-Type": OCI_MANIFEST}) == [_repo("src/repo", PULL, PUSH)]
    assert needed("DELETE", "/v2/src/repo/manifests/v2", 202) == [_repo("src/repo", DELETE)]
    assert needed("GET", f"/v2/src/repo/blobs/{layer}", 200) == [_repo("src/repo", PULL)]
    assert needed("HEAD", f"/v2/src/repo/blobs/{layer}", 200) == [_repo("src/repo", PULL)]
    assert needed("GET", f"/v2/src/repo/referrers/{image.digest}", 200) == [_repo("src/repo", PULL)]
    assert needed("POST", "/v2/lib/app/blobs/uploads/", 202) == [_repo("lib/app", PULL, PUSH)]
    assert needed("POST", f"/v2/lib/app/blobs/uploads/?mount={layer}&from=src/repo", 201) == [
        _repo("lib/app", PULL, PUSH), _repo("src/repo", PULL)]
    assert needed("POST", f"/v2/lib/app/blobs/uploads/?mount={layer}", 202) == [
        _repo("lib/app", PULL, PUSH)]
    assert needed("GET", upload, 204) == [_repo("lib/app", PUSH)]
    assert needed("PATCH", upload, 202, body=DATA) == [_repo("lib/app", PUSH)]
    assert needed("PUT", with_query(upload, digest=sha256(DATA)), 201) == [_repo("lib/app", PUSH)]
    upload = path_of(app.post("/v2/lib/app/blobs/uploads/", status=202).headers["Location"])
    assert needed("DELETE", upload, 204) == [_repo("lib/app", PUSH)]
    assert needed("DELETE", f"/v2/lib/app/blobs/{layer}", 202) == [_repo("lib/app", DELETE)]


def test_auth_hook_not_asked_for_invalid_names_or_unknown_paths() -> None:
    hook = RecordingAuth()
    app = webtest.TestApp(Registry(storage=MemoryStorage(), auth=hook))
    assert_error(app.get("/v2/BAD/tags/list", status=400), 400, "NAME_INVALID")
    assert_error(app.get("/v2/nothing/here", status=404), 404)
    assert_error(app.post("/v2/lib/app/blobs/uploads/?mount=" + sha256(b"x") + "&from=BAD",
                          status=400), 400, "NAME_INVALID")
    assert hook.calls == []


def test_read_only_denies_push_and_delete_with_403() -> None:
    """The shipped ReadOnly policy: pulls and listings pass, push and delete are 403 DENIED (code-12)."""
    storage = MemoryStorage()
    image = RegistryClient(webtest.TestApp(Registry(storage=storage))).push_image("lib/app", "v1")
    app = webtest.TestApp(Registry(storage=storage, auth=ReadOnly()))
    assert app.get("/v2/").status_int == 200
    assert app.get("/v2/_catalog").status_int == 200
    assert app.get("/v2/lib/app/tags/list").status_int == 200
    assert app.get("/v2/lib/app/manifests/v1").body == image.body
    layer = next(iter(image.blobs))
    assert app.get(f"/v2/lib/app/blobs/{layer}").status_int == 200
    for method, path, body in [
        ("POST", "/v2/lib/app/blobs/uploads/", b""),
        ("POST", f"/v2/lib/app/blobs/uploads/?digest={sha256(DATA)}", DATA),
        ("POST", f"/v2/other/blobs/uploads/?mount={layer}&from=lib/app", b""),
        ("PATCH", "/v2/lib/app/blobs/uploads/abcdefghijklmnopqrstuvwx", DATA),
        ("PUT", f"/v2/lib/app/blobs/uploads/abcdefghijklmnopqrstuvwx?digest={sha256(DATA)}", DATA),
        ("DELETE", "/v2/lib/app/blobs/uploads/abcdefghijklmnopqrstuvwx", b""),
        ("PUT", "/v2/lib/app/manifests/v2", image.body),
        ("DELETE", "/v2/lib/app/manifests/v1", b""),
        ("DELETE", f"/v2/lib/app/blobs/{layer}", b""),
    ]:
        response = app.request(path, method=method, body=body, status=403)
        assert_error(response, 403, "DENIED")
    assert app.get("/v2/lib/app/manifests/v1").body == image.body
    assert json.loads(app.get("/v2/lib/app/tags/list").body)["tags"] == ["v1"]


class _PullOnly:
    """Anonymous may pull; pushing asks for credentials (401) and a wrong user is denied (403)."""

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        wants_write = any(a.actions - {PULL} for a in needed)
        if not wants_write:
            return None
        user = request.headers.get("Authorization")
        if user is None:
            raise Unauthorized({"scope": [a.scope for a in needed]},
                               challenge='Bearer realm="http://localhost/token",service="test"')
        raise Denied({"scope": [a.scope for a in needed]})


def test_hook_errors_render_401_with_challenge_and_403() -> None:
    """Code-11 UNAUTHORIZED with ``WWW-Authenticate`` and code-12 DENIED, from any endpoint."""
    app = webtest.TestApp(Registry(storage=MemoryStorage(), auth=_PullOnly()))
    response = app.post("/v2/lib/app/blobs/uploads/", status=401)
    error = assert_error(response, 401, "UNAUTHORIZED")
    assert error["detail"] == {"scope": ["repository:lib/app:pull,push"]}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="http://localhost/token",service="test"'
    assert_error(app.head(f"/v2/lib/app/blobs/{sha256(b'x')}", status=404), 404)
    response = app.delete("/v2/lib/app/manifests/v1", headers={"Authorization": "Bearer x"}, status=403)
    assert_error(response, 403, "DENIED")
