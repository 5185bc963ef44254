"""``Registry(delete_enabled=False)``: deletes of manifests, tags and blobs are refused.

oci-distribution-spec.md "Content Management": registries MAY disable deletion, and then MUST answer
400 or 405 to end-9 (manifests and tags) and end-10 (blobs). docker-registry-http-api-v2.md
"DELETE Manifest" and "DELETE Blob", "On Failure: Not allowed": 405 with ``UNSUPPORTED`` when
``delete`` has been disabled. The refusal comes before the auth hook, so it is the same whatever
the hook would grant; cancelling an upload (end-14) is not a delete and stays allowed.
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

from . import Image, RecordingAuth, RegistryClient, assert_error, path_of, sha256

DISABLED = "deletes are disabled on this registry"


@pytest.fixture
def locked(storage: Storage) -> webtest.TestApp:
    return webtest.TestApp(Registry(storage=storage, delete_enabled=False))


@pytest.fixture
def image(locked: webtest.TestApp) -> Image:
    """Pushing still works on a registry without deletes."""
    return RegistryClient(locked).push_image("lib/app", "v1", layers=[b"layer bytes"])


def assert_disabled(response: webtest.TestResponse, allow: str) -> None:
    error = assert_error(response, 405, "UNSUPPORTED")
    assert error["message"] == DISABLED
    assert error["detail"] == {"method": "DELETE"}
    assert response.headers["Allow"] == allow  # RFC 9110 section 15.5.6: a 405 lists what is allowed


def test_end_9_delete_manifest_by_digest_405_and_it_stays(locked: webtest.TestApp, image: Image) -> None:
    assert_disabled(locked.delete(f"/v2/lib/app/manifests/{image.digest}", status=405), "GET, HEAD, PUT")
    assert locked.get(f"/v2/lib/app/manifests/{image.digest}", status=200).body == image.body
    assert locked.get("/v2/lib/app/manifests/v1", status=200).body == image.body


def test_end_9_delete_tag_405_and_tag_stays(locked: webtest.TestApp, image: Image) -> None:
    assert_disabled(locked.delete("/v2/lib/app/manifests/v1", status=405), "GET, HEAD, PUT")
    assert locked.get("/v2/lib/app/tags/list", status=200).json["tags"] == ["v1"]


def test_end_10_delete_blob_405_and_blob_stays(locked: webtest.TestApp, image: Image) -> None:
    layer = sha256(b"layer bytes")
    assert_disabled(locked.delete(f"/v2/lib/app/blobs/{layer}", status=405), "GET, HEAD")
    assert locked.get(f"/v2/lib/app/blobs/{layer}", status=200).body == b"layer bytes"


def test_refusal_does_not_depend_on_what_exists(locked: webtest.TestApp) -> None:
    """The same answer for a repository, manifest or blob that does not exist (nothing is revealed)."""
    assert_disabled(locked.delete(f"/v2/no/such/manifests/{sha256(b'x')}", status=405), "GET, HEAD, PUT")
    assert_disabled(locked.delete("/v2/no/such/manifests/latest", status=405), "GET, HEAD, PUT")
    assert_disabled(locked.delete(f"/v2/no/such/blobs/{sha256(b'x')}", status=405), "GET, HEAD")


def test_invalid_name_is_still_name_invalid(locked: webtest.TestApp) -> None:
    assert_error(locked.delete(f"/v2/Bad_Name/blobs/{sha256(b'x')}", status=400), 400, "NAME_INVALID")


def test_end_14_cancelling_an_upload_stays_allowed(locked: webtest.TestApp) -> None:
    location = RegistryClient(locked).start_upload("lib/app").headers["Location"]
    locked.delete(path_of(location), status=204)
    assert_error(locked.get(path_of(location), status=404), 404, "BLOB_UPLOAD_UNKNOWN")


class _LoginRequired:
    """Grants everything to a request with credentials, challenges one without."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, list[Access]]] = []

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        self.asked.append((request.method, list(needed)))
        if "Authorization" not in request.headers:
            raise Unauthorized(challenge='Basic realm="test"')
        return "admin"


@pytest.mark.parametrize("path", ["/v2/lib/app/manifests/v1", f"/v2/lib/app/blobs/{sha256(b'x')}"])
def test_refused_before_the_auth_hook_whatever_it_grants(storage: Storage, path: str) -> None:
    """Independent of the hook: no challenge first, the hook is not asked, and a grant changes nothing."""
    hook = _LoginRequired()
    app = webtest.TestApp(Registry(storage=storage, auth=hook, delete_enabled=False))
    response = app.delete(path, status=405)
    assert_error(response, 405, "UNSUPPORTED")
    assert "WWW-Authenticate" not in response.headers
    app.delete(path, headers={"Authorization": "Basic YWRtaW46YWRtaW4="}, status=405)
    assert hook.asked == []
    # Other methods still go through the hook.
    app.get("/v2/lib/app/tags/list", status=401)
    assert hook.asked == [("GET", [Access.repository("lib/app", "pull")])]


def test_enabled_by_default_and_then_the_hook_decides(storage: Storage,
                                                      recording_auth: RecordingAuth) -> None:
    """The control: without the switch the same deletes reach the hook and succeed."""
    app = webtest.TestApp(Registry(storage=storage, auth=recording_auth))
    assert app.app.delete_enabled is True
    client = RegistryClient(app)
    image = client.push_image("lib/app", "v1", layers=[b"layer bytes"])
    recording_auth.reset()
    app.delete("/v2/lib/app/manifests/v1", status=202)
    app.delete(f"/v2/lib/app/manifests/{image.digest}", status=202)
    app.delete(f"/v2/lib/app/blobs/{sha256(b'layer bytes')}", status=202)
    assert [method for method, _, _ in recording_auth.calls] == ["DELETE"] * 3
