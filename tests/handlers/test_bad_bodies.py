"""Request bodies the registry cannot take as sent: a 4xx/5xx with the spec's error, never a 500.

Driven through the WSGI app with hand-built environs (:func:`raw_call`), for each endpoint that
reads a body: PATCH (end-5), PUT ``?digest=`` (end-6), POST ``?digest=`` (end-4b) and the
manifest PUT (end-7). Spec: oci-distribution-spec.md "Error Codes" (BLOB_UPLOAD_INVALID,
MANIFEST_INVALID, UNSUPPORTED), "Pushing a blob in chunks" (a failed chunk leaves the session at
its offset); RFC 9112 section 6.1 (transfer codings: 501), RFC 9110 sections 15.5.12 (411) and
15.5.16 (415). The same requests against real servers are in tests/test_gunicorn_input.py and
tests/test_servers.py.
"""

from __future__ import annotations

import logging

import pytest
import webtest
from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData
from werkzeug.exceptions import ClientDisconnected

from docker_registry_wsgi import Registry

from . import OCI_MANIFEST, FailingInput, RawResponse, RegistryClient, assert_error, path_of, raw_call, sha256

DATA = bytes(range(256)) * 4
NAME = "lib/app"


STREAM_ERRORS = [
    InvalidChunkSize(b"zz"),
    ChunkMissingTerminator(b"XX"),
    NoMoreData(b""),
    OSError("Invalid chunk header"),
    ValueError("Size must be positive."),
    ClientDisconnected(),
]


def error_of(response: RawResponse, status: int, code: str) -> dict[str, object]:
    """The response's one OCI error, after checking its status and code."""
    assert response.status == status, (response.status, response.body[:300])
    assert response.header("Content-Type") == "application/json"
    [error] = response.json()["errors"]
    assert error["code"] == code, error
    return error


@pytest.fixture
def app(registry: Registry) -> webtest.TestApp:
    return webtest.TestApp(registry)


@pytest.fixture
def location(app: webtest.TestApp) -> str:
    """An upload session already holding ``DATA[:100]`` (offset 100)."""
    location = path_of(RegistryClient(app).start_upload(NAME).headers["Location"])
    app.patch(location, DATA[:100], headers={"Content-Type": "application/octet-stream"}, status=202)
    return location


@pytest.fixture(autouse=True)
def no_error_logged(caplog: pytest.LogCaptureFixture) -> object:
    """Every test here: nothing logged at ERROR (the app logs a traceback only for a 500)."""
    with caplog.at_level(logging.ERROR, logger="docker_registry_wsgi"):
        yield
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def assert_session_at(app: webtest.TestApp, location: str, offset: int) -> None:
    """spec "Pushing a blob in chunks": the session is still there, at ``offset``, and completes."""
    assert app.get(location, status=204).headers["Range"] == f"0-{offset - 1}"
    app.patch(location, DATA[offset:], headers={"Content-Type": "application/octet-stream"}, status=202)
    response = app.put(f"{location}?digest={sha256(DATA)}", status=201)
    assert app.get(f"/v2/{NAME}/blobs/{response.headers['Docker-Content-Digest']}").body == DATA


# -- the server's stream fails while the registry reads it -------------------------------------------


@pytest.mark.parametrize("error", STREAM_ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_unreadable_chunk_is_blob_upload_invalid_and_the_session_stays(
    registry: Registry, app: webtest.TestApp, location: str, error: BaseException, method: str
) -> None:
    """A malformed/truncated body on PATCH or the closing PUT: 400 BLOB_UPLOAD_INVALID, and the
    bytes of the failed request are dropped: the session is at its previous offset (100)."""
    query = f"digest={sha256(DATA)}" if method == "PUT" else ""
    response = raw_call(registry, method, location, query=query, chunked=True,
                        wsgi_input=FailingInput(DATA[100:300], error))
    detail = error_of(response, 400, "BLOB_UPLOAD_INVALID")["detail"]
    assert isinstance(detail, dict) and detail["reason"].startswith(type(error).__name__)
    assert_session_at(app, location, 100)


@pytest.mark.parametrize("error", STREAM_ERRORS, ids=lambda e: type(e).__name__)
def test_unreadable_monolithic_post_is_blob_upload_invalid(registry: Registry, app: webtest.TestApp,
                                                           error: BaseException) -> None:
    """end-4b, POST ``?digest=`` whose body breaks off: 400 BLOB_UPLOAD_INVALID, no blob."""
    digest = sha256(DATA)
    response = raw_call(registry, "POST", f"/v2/{NAME}/blobs/uploads/", query=f"digest={digest}",
                        chunked=True, wsgi_input=FailingInput(DATA[:300], error))
    error_of(response, 400, "BLOB_UPLOAD_INVALID")
    app.head(f"/v2/{NAME}/blobs/{digest}", status=404)


@pytest.mark.parametrize("error", STREAM_ERRORS, ids=lambda e: type(e).__name__)
def test_unreadable_manifest_is_manifest_invalid(registry: Registry, app: webtest.TestApp,
                                                 error: BaseException) -> None:
    """end-7: a manifest body that breaks off is a manifest that did not arrive whole:
    400 MANIFEST_INVALID (the code the spec lists for this endpoint), nothing tagged."""
    response = raw_call(registry, "PUT", f"/v2/{NAME}/manifests/v1", headers={"Content-Type": OCI_MANIFEST},
                        chunked=True, wsgi_input=FailingInput(b'{"schemaVersion": 2, "con', error))
    error_of(response, 400, "MANIFEST_INVALID")
    assert_error(app.get(f"/v2/{NAME}/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")


# -- chunked bodies the WSGI server does not decode ---------------------------------------------------


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_undecoded_chunked_chunk_is_411_and_the_session_stays(registry: Registry, app: webtest.TestApp,
                                                             location: str, method: str) -> None:
    """wsgiref/uWSGI: no ``wsgi.input_terminated``, so the body would read as nothing (a 202 that
    stored 0 bytes) or as raw framing: 411 UNSUPPORTED, the session untouched."""
    query = f"digest={sha256(DATA)}" if method == "PUT" else ""
    response = raw_call(registry, method, location, b"5\r\nhello\r\n0\r\n\r\n", query=query,
                        chunked=True, input_terminated=False)
    error = error_of(response, 411, "UNSUPPORTED")
    assert "Content-Length" in str(error["message"])
    assert_session_at(app, location, 100)


def test_undecoded_chunked_post_and_manifest_are_411(registry: Registry, app: webtest.TestApp) -> None:
    """end-4b and end-7 read their bodies the same way: 411, nothing stored."""
    digest = sha256(b"hello")
    response = raw_call(registry, "POST", f"/v2/{NAME}/blobs/uploads/", b"5\r\nhello\r\n0\r\n\r\n",
                        query=f"digest={digest}", chunked=True, input_terminated=False)
    error_of(response, 411, "UNSUPPORTED")
    app.head(f"/v2/{NAME}/blobs/{digest}", status=404)
    response = raw_call(registry, "PUT", f"/v2/{NAME}/manifests/v1", b"2\r\n{}\r\n0\r\n\r\n",
                        {"Content-Type": OCI_MANIFEST}, chunked=True, input_terminated=False)
    error_of(response, 411, "UNSUPPORTED")


# -- transfer codings other than chunked -----------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip, chunked", "deflate, chunked", "chunked, chunked"])
@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_transfer_coding_other_than_chunked_is_501_and_the_session_stays(
    registry: Registry, app: webtest.TestApp, location: str, coding: str, method: str
) -> None:
    """RFC 9112 6.1: a ``gzip, chunked`` chunk was stored still gzipped; now 501 UNSUPPORTED."""
    query = f"digest={sha256(DATA)}" if method == "PUT" else ""
    response = raw_call(registry, method, location, b"\x1f\x8b\x08\x00", {"Transfer-Encoding": coding},
                        query=query, chunked=True)
    error = error_of(response, 501, "UNSUPPORTED")
    assert error["detail"] == {"Transfer-Encoding": coding}
    assert_session_at(app, location, 100)


def test_transfer_coding_on_post_and_manifest_is_501(registry: Registry, app: webtest.TestApp) -> None:
    digest = sha256(b"\x1f\x8b\x08\x00")
    response = raw_call(registry, "POST", f"/v2/{NAME}/blobs/uploads/", b"\x1f\x8b\x08\x00",
                        {"Transfer-Encoding": "gzip, chunked"}, query=f"digest={digest}", chunked=True)
    error_of(response, 501, "UNSUPPORTED")
    app.head(f"/v2/{NAME}/blobs/{digest}", status=404)
    response = raw_call(registry, "PUT", f"/v2/{NAME}/manifests/v1", b"\x1f\x8b\x08\x00",
                        {"Content-Type": OCI_MANIFEST, "Transfer-Encoding": "gzip, chunked"}, chunked=True)
    error_of(response, 501, "UNSUPPORTED")


# -- content codings -----------------------------------------------------------------------------------------


def test_content_coded_manifest_is_415(registry: Registry, app: webtest.TestApp) -> None:
    """RFC 9110 15.5.16: a manifest is stored and digested as sent, so a gzip-coded one would be
    stored coded: 415 UNSUPPORTED with ``Accept-Encoding: identity`` (RFC 9110 12.5.3)."""
    response = raw_call(registry, "PUT", f"/v2/{NAME}/manifests/v1", b"\x1f\x8b\x08\x00",
                        {"Content-Type": OCI_MANIFEST, "Content-Encoding": "gzip"})
    error_of(response, 415, "UNSUPPORTED")
    assert response.header("Accept-Encoding") == "identity"
    assert_error(app.get(f"/v2/{NAME}/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")


def test_content_coding_on_a_blob_is_part_of_the_blob(registry: Registry, app: webtest.TestApp) -> None:
    """A blob is opaque bytes, digested as sent: ``Content-Encoding`` on an upload is not decoded,
    and a digest of the decoded bytes would not match (DIGEST_INVALID), so nothing is stored wrong."""
    coded = b"\x1f\x8b\x08\x00 gzip bytes of a layer"
    response = raw_call(registry, "POST", f"/v2/{NAME}/blobs/uploads/", coded,
                        {"Content-Encoding": "gzip"}, query=f"digest={sha256(coded)}")
    assert response.status == 201, response.body
    assert app.get(f"/v2/{NAME}/blobs/{sha256(coded)}").body == coded
