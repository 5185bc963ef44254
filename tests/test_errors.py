"""The error hierarchy and its rendering as the spec's JSON error body.

Spec: oci-distribution-spec.md "Error Codes" (the body format and the code table),
"Pushing a blob in chunks" (416 for out-of-order chunks), "Pushing Manifests" (413 for manifests
over the limit); docker-registry-http-api-v2.md "Errors", "API Version Check" (the
``Docker-Distribution-API-Version`` header) and "On Failure: Authentication Required" (401 with
``WWW-Authenticate``).
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi import errors
from docker_registry_wsgi.errors import RegistryError, Unauthorized
from docker_registry_wsgi.responses import API_VERSION_HEADER, error_reply
from tests.unit_fixtures import FAST


class Rendered:
    """What a WSGI server sends for a RegistryError's response."""

    def __init__(self, error: RegistryError, method: str = "GET", location: str | None = None) -> None:
        captured: dict[str, object] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> None:
            captured["status"], captured["headers"] = status, headers

        environ = {"REQUEST_METHOD": method, "PATH_INFO": "/v2/", "SERVER_NAME": "localhost",
                   "SERVER_PORT": "80", "wsgi.url_scheme": "http"}
        self.body = b"".join(error_reply(error, location)(environ, start_response))
        self.status_line = str(captured["status"])
        self.status_code = int(self.status_line.split()[0])
        self.header_list: list[tuple[str, str]] = list(captured["headers"])  # type: ignore[arg-type]
        self.headers = {k.lower(): v for k, v in self.header_list}

    def json(self) -> object:
        return json.loads(self.body)

#: oci-distribution-spec.md "Error Codes", code-1 .. code-14, with the spec's descriptions.
SPEC_CODES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown to registry",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
}

#: (class, code, status) as the spec's endpoint table and the docker API's failure sections give them.
EXPECTED = [
    (errors.BlobUnknown, "BLOB_UNKNOWN", 404),
    (errors.BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400),
    (errors.RangeInvalid, "BLOB_UPLOAD_INVALID", 416),
    (errors.BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
    (errors.DigestInvalid, "DIGEST_INVALID", 400),
    (errors.ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400),
    (errors.ManifestInvalid, "MANIFEST_INVALID", 400),
    (errors.ManifestTooLarge, "MANIFEST_INVALID", 413),
    (errors.TagInvalid, "MANIFEST_INVALID", 400),
    (errors.ManifestUnknown, "MANIFEST_UNKNOWN", 404),
    (errors.NameInvalid, "NAME_INVALID", 400),
    (errors.NameUnknown, "NAME_UNKNOWN", 404),
    (errors.SizeInvalid, "SIZE_INVALID", 400),
    (errors.Unauthorized, "UNAUTHORIZED", 401),
    (errors.Denied, "DENIED", 403),
    (errors.Unsupported, "UNSUPPORTED", 400),
    (errors.PaginationNumberInvalid, "PAGINATION_NUMBER_INVALID", 400),
    (errors.LengthRequired, "UNSUPPORTED", 411),
    (errors.ContentCodingUnsupported, "UNSUPPORTED", 415),
    (errors.TransferCodingUnsupported, "UNSUPPORTED", 501),
    (errors.MethodNotAllowed, "UNSUPPORTED", 405),
    (errors.NotFound, "UNSUPPORTED", 404),
    (errors.RangeNotSatisfiable, "UNSUPPORTED", 416),
    (errors.TooManyRequests, "TOOMANYREQUESTS", 429),
    (errors.BlobUploadBusy, "BLOB_UPLOAD_INVALID", 409),
    (errors.Unavailable, "UNAVAILABLE", 503),
    (errors.InsufficientStorage, "UNAVAILABLE", 507),
    (errors.UpstreamFailed, "UNAVAILABLE", 502),
]

#: Codes beyond the OCI table, each one distribution sends for the same case; the Docker API text
#: tells clients to treat codes they do not know as UNKNOWN. docker-registry-http-api-v2.md
#: "Errors" names PAGINATION_NUMBER_INVALID for a bad ``n`` ("On Failure: Invalid pagination
#: number"); UNAVAILABLE is distribution's errcode.ErrorCodeUnavailable.
EXTENSION_CODES = {
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "UNAVAILABLE": "the registry's storage refuses writes; retry later",
}


@pytest.mark.parametrize("cls,code,status", EXPECTED, ids=[c[0].__name__ for c in EXPECTED])
def test_codes_and_statuses(cls: type[RegistryError], code: str, status: int) -> None:
    """spec "Error Codes" and "Endpoints": each error has its spec code and status."""
    error = cls()
    assert (error.code, error.status) == (code, status)
    assert error.code in SPEC_CODES or error.code in EXTENSION_CODES
    assert re.fullmatch(r"[A-Z_]+", error.code), "code: only uppercase letters and underscores"


def test_every_spec_code_has_an_error_class() -> None:
    """spec "Error Codes": all fourteen codes can be raised, each with the spec's own message."""
    classes = [getattr(errors, n) for n in errors.__all__ if isinstance(getattr(errors, n), type)]
    base = {c.code: c for c in classes if issubclass(c, RegistryError) and c.__bases__ == (RegistryError,)}
    assert set(SPEC_CODES) <= set(base) <= set(SPEC_CODES) | set(EXTENSION_CODES)
    for code, cls in base.items():
        assert cls.message == {**SPEC_CODES, **EXTENSION_CODES}[code]


def test_every_exported_error_is_covered() -> None:
    """Every RegistryError in ``errors.__all__`` is in the table above (a new one needs a test)."""
    exported = {getattr(errors, n) for n in errors.__all__}
    exported = {c for c in exported if isinstance(c, type) and issubclass(c, RegistryError) and c is not RegistryError}
    assert exported == {cls for cls, _, _ in EXPECTED}


@pytest.mark.parametrize("cls,code,status", EXPECTED, ids=[c[0].__name__ for c in EXPECTED])
def test_response_is_the_spec_json(cls: type[RegistryError], code: str, status: int) -> None:
    """spec "Error Codes": ``{"errors": [{"code", "message", "detail"}]}`` as application/json."""
    response = Rendered(cls({"digest": "sha256:abc"}))
    assert response.status_code == status
    assert response.status_line.startswith(f"{status} ") and len(response.status_line) > 4
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == {"errors": [{"code": code, "message": cls.message, "detail": {"digest": "sha256:abc"}}]}
    assert response.headers["content-length"] == str(len(response.body))
    assert response.headers[API_VERSION_HEADER[0].lower()] == "registry/2.0"
    names = [k.lower() for k, _ in response.header_list]
    assert len(names) == len(set(names)), "no header is sent twice"


def test_detail_is_optional_and_omitted_when_none() -> None:
    """spec "Error Codes": ``detail`` is OPTIONAL; absent rather than null."""
    assert errors.BlobUnknown().body() == {"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown to registry"}]}
    assert errors.BlobUnknown("").body()["errors"][0]["detail"] == ""
    assert errors.BlobUnknown(0).body()["errors"][0]["detail"] == 0


def test_message_can_be_specific_without_changing_the_class() -> None:
    """spec "Error Codes": ``message`` is human readable; a specific one replaces the generic one."""
    error = errors.ManifestInvalid({"field": "config"}, message="an image manifest needs config")
    assert error.body()["errors"][0]["message"] == "an image manifest needs config"
    assert errors.ManifestInvalid.message == "manifest invalid"
    assert str(error) == "MANIFEST_INVALID: an image manifest needs config ({'field': 'config'})"
    assert str(errors.BlobUnknown()) == "BLOB_UNKNOWN: blob unknown to registry"


def test_head_response_has_no_body_but_the_same_headers() -> None:
    """RFC 9110 9.3.2: HEAD answers like GET without the body (Content-Length of the GET body)."""
    get = Rendered(errors.ManifestUnknown({"tag": "x"}))
    head = Rendered(errors.ManifestUnknown({"tag": "x"}), "HEAD")
    assert head.body == b"" and get.body
    assert head.status_code == get.status_code == 404
    assert head.headers["content-length"] == get.headers["content-length"] == str(len(get.body))


def test_an_upload_range_error_carries_what_the_client_resumes_from() -> None:
    """spec "Pushing a blob in chunks": a 416 carries ``Location`` and ``Range`` for the client to resume.

    The error sets them itself from the session; only the absolute ``Location`` is the renderer's,
    given the error's link (the app knows where ``/v2`` is mounted).
    """
    error = errors.RangeInvalid({"offset": 10}, name="a", upload_id="x", offset=10)
    assert error.link == ("upload", {"name": "a", "upload_id": "x"})
    response = Rendered(error, location="http://localhost/v2/a/blobs/uploads/x")
    assert response.status_code == 416
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    assert response.headers["location"] == "http://localhost/v2/a/blobs/uploads/x"
    assert response.headers["range"] == "0-9"
    assert response.headers["docker-upload-uuid"] == "x"
    assert errors.RangeInvalid().headers == {}, "headers are per instance, never shared"
    assert errors.RangeInvalid().link is None


def test_an_unsatisfiable_download_range_carries_its_content_range() -> None:
    """RFC 9110 section 15.5.17: a 416 to a ``Range`` sends ``Content-Range: bytes */<size>``."""
    response = Rendered(errors.RangeNotSatisfiable(size=42))
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */42"
    assert response.json() == {"errors": [{"code": "UNSUPPORTED", "message": "requested range not satisfiable",
                                           "detail": {"size": 42}}]}


def test_the_vocabulary_does_not_import_http() -> None:
    """errors.py (and so every parser raising its errors) depends on no WSGI response or werkzeug."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(errors))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert imported <= {"__future__", "typing", "ranges"}, imported


def test_unauthorized_carries_the_challenge() -> None:
    """docker-registry-http-api-v2.md "On Failure: Authentication Required": 401 with WWW-Authenticate."""
    challenge = 'Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"'
    response = Rendered(Unauthorized(challenge=challenge))
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    assert "www-authenticate" not in Rendered(Unauthorized()).headers


def test_method_not_allowed_can_list_allowed_methods() -> None:
    """RFC 9110 15.5.6: a 405 response lists the allowed methods in ``Allow``."""
    response = Rendered(errors.MethodNotAllowed({"method": "POST"}, headers={"Allow": "GET, HEAD"}))
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD"


def test_errors_are_exceptions_with_spec_semantics() -> None:
    """Narrower errors are caught by the broader ones (a 416 range error is an upload error)."""
    assert issubclass(errors.RangeInvalid, errors.BlobUploadInvalid)
    assert issubclass(errors.ManifestTooLarge, errors.ManifestInvalid)
    assert issubclass(errors.TagInvalid, errors.ManifestInvalid)
    with pytest.raises(RegistryError):
        raise errors.Denied()


json_details = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10,
)


@FAST
@given(detail=json_details, message=st.none() | st.text(max_size=50))
def test_any_detail_renders_as_valid_json(detail: object, message: str | None) -> None:
    """spec "Error Codes": ``detail`` MAY contain arbitrary JSON; the body stays valid JSON."""
    body = Rendered(errors.NameInvalid(detail, message=message)).json()
    entry = body["errors"][0]
    assert entry["code"] == "NAME_INVALID"
    assert entry["message"] == (message if message is not None else "invalid repository name")
    assert entry.get("detail") == detail
