"""``Registry(read_only=True)`` (``serve --read-only``): every request that would write is refused.

distribution's ``maintenance.readonly`` registers only ``GET`` and ``HEAD`` handlers, so a push,
an upload (its start, chunks, completion, cancelling, a mount) and a delete answer 405 Method Not
Allowed with an ``Allow`` header (RFC 9110 section 15.5.6). Here the body is the spec's error JSON
with ``UNSUPPORTED`` (docker-registry-http-api-v2.md, "Errors": "The operation is unsupported"),
as for disabled deletes; oci-distribution-spec.md "Content Management" allows 405 for refused
deletes. The refusal comes before the auth hook: the same for every caller, no challenge first.
"""

from __future__ import annotations

from typing import Sequence

import pytest
import webtest
from werkzeug.wrappers import Request

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.errors import Unauthorized
from docker_registry_wsgi.storage import Storage

from . import OCI_MANIFEST, Image, RegistryClient, assert_error, path_of, sha256

READ_ONLY = "this registry is read-only: pushes and deletes are refused"
LAYER = b"layer bytes"


@pytest.fixture
def image(storage: Storage) -> Image:
    """Pushed while the registry was writable."""
    return RegistryClient(webtest.TestApp(Registry(storage=storage))).push_image("lib/app", "v1", layers=[LAYER])


@pytest.fixture
def frozen(storage: Storage, image: Image) -> webtest.TestApp:
    return webtest.TestApp(Registry(storage=storage, read_only=True))


def assert_read_only(response: webtest.TestResponse, method: str, allow: str) -> None:
    error = assert_error(response, 405, "UNSUPPORTED")
    assert error["message"] == READ_ONLY and error["detail"] == {"method": method}
    assert response.headers["Allow"] == allow


def test_pulls_go_on(frozen: webtest.TestApp, image: Image) -> None:
    """end-2, end-3, end-8a: what a pull needs answers as before."""
    assert frozen.get(f"/v2/lib/app/manifests/{image.digest}").body == image.body
    assert frozen.head("/v2/lib/app/manifests/v1").headers["Docker-Content-Digest"] == image.digest
    assert frozen.get(f"/v2/lib/app/blobs/{sha256(LAYER)}").body == LAYER
    assert frozen.get("/v2/lib/app/tags/list").json["tags"] == ["v1"]
    assert frozen.get("/v2/_catalog").json["repositories"] == ["lib/app"]


def test_end_4_and_11_starting_an_upload_or_a_mount_405(frozen: webtest.TestApp) -> None:
    assert_read_only(frozen.post("/v2/lib/new/blobs/uploads/", status=405), "POST", "")
    assert_read_only(frozen.post(f"/v2/lib/new/blobs/uploads/?digest={sha256(b'x')}", b"x", status=405), "POST", "")
    assert_read_only(frozen.post(f"/v2/lib/new/blobs/uploads/?mount={sha256(LAYER)}&from=lib/app",
                                 status=405), "POST", "")


def test_end_5_6_14_an_upload_begun_before_cannot_go_on(storage: Storage) -> None:
    """A session started while writable: its chunks, completion and cancelling are refused; its
    status may still be read (end-13)."""
    location = RegistryClient(webtest.TestApp(Registry(storage=storage))).start_upload("lib/app").headers["Location"]
    frozen = webtest.TestApp(Registry(storage=storage, read_only=True))
    path = path_of(location)
    assert_read_only(frozen.patch(path, b"abc", headers={"Content-Type": "application/octet-stream"}, status=405),
                     "PATCH", "GET")
    assert_read_only(frozen.put(f"{path}?digest={sha256(b'')}", b"", status=405), "PUT", "GET")
    assert_read_only(frozen.delete(path, status=405), "DELETE", "GET")
    assert frozen.get(path, status=204).headers["Range"] == "0-0"  # as the registry reports an empty session


def test_end_7_9_10_manifests_tags_and_blobs_cannot_change(frozen: webtest.TestApp, image: Image) -> None:
    assert_read_only(frozen.put("/v2/lib/app/manifests/v2", image.body, headers={"Content-Type": OCI_MANIFEST},
                                status=405), "PUT", "GET, HEAD")
    assert_read_only(frozen.delete("/v2/lib/app/manifests/v1", status=405), "DELETE", "GET, HEAD")
    assert_read_only(frozen.delete(f"/v2/lib/app/blobs/{sha256(LAYER)}", status=405), "DELETE", "GET, HEAD")
    assert frozen.get("/v2/lib/app/tags/list").json["tags"] == ["v1"]
    assert frozen.get(f"/v2/lib/app/blobs/{sha256(LAYER)}").body == LAYER


class _LoginRequired:
    """Grants everything to a request with credentials, challenges one without."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[Access]]] = []

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        self.asked.append((request.method, list(needed)))
        if "Authorization" not in request.headers:
            raise Unauthorized(challenge='Basic realm="test"')
        return "admin"


def test_refused_before_the_auth_hook_whatever_it_grants(storage: Storage, image: Image) -> None:
    """Combinable with any auth: an admin is refused too, and nobody is asked to log in first."""
    hook = _LoginRequired()
    app = webtest.TestApp(Registry(storage=storage, auth=hook, read_only=True))
    for credentials in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}):
        response = app.delete("/v2/lib/app/manifests/v1", headers=credentials, status=405)
        assert "WWW-Authenticate" not in response.headers
        app.post("/v2/lib/app/blobs/uploads/", headers=credentials, status=405)
    assert hook.asked == []
    app.get("/v2/lib/app/tags/list", status=401)  # reads still go through the hook
    assert app.get("/v2/lib/app/tags/list", headers={"Authorization": "Basic YWRtaW46YWRtaW4="}).json["tags"] == ["v1"]


def test_an_unknown_method_is_still_the_route_table_405(frozen: webtest.TestApp) -> None:
    response = frozen.request("/v2/lib/app/tags/list", method="PUT", status=405)
    assert_error(response, 405, "UNSUPPORTED")
    assert response.headers["Allow"] == "GET"
