"""``/v2/<name>/blobs/uploads/...``: oci-distribution-spec.md "Pushing blobs", "Pushing a blob
monolithically" (end-4a, end-4b, end-6), "Pushing a blob in chunks" (end-4c, end-5, end-13),
"Cancel a blob upload" (end-14) and "Mounting a blob from another repository" (end-11)."""

from __future__ import annotations

import hashlib
import re

import pytest
import webtest
from hypothesis import HealthCheck, given, settings, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import MemoryStorage, Storage

from . import (
    RegistryClient,
    assert_api_version,
    assert_error,
    path_of,
    raw_call,
    sha256,
    with_query,
)

DATA = b"0123456789abcdefghijklmnopqrstuvwxyz" * 3
LOCATION = re.compile(r"http://localhost/v2/lib/app/blobs/uploads/([A-Za-z0-9_-]+)")


def _session(app: webtest.TestApp, name: str = "lib/app") -> str:
    """POST a session; the path of its ``Location``."""
    return path_of(app.post(f"/v2/{name}/blobs/uploads/", status=202).headers["Location"])


def _patch(app: webtest.TestApp, location: str, data: bytes, start: int | None = None,
           status: int | str = 202) -> webtest.TestResponse:
    headers = {"Content-Type": "application/octet-stream"}
    if start is not None:
        headers["Content-Range"] = f"{start}-{start + len(data) - 1}"
    return app.patch(location, data, headers=headers, status=status)


def _blob_key_exists(storage: Storage, digest: str) -> bool:
    algorithm, hexa = digest.split(":")
    try:
        storage.size(f"blobs/{algorithm}/{hexa[:2]}/{hexa}")
    except KeyError:
        return False
    return True


# -- POST: sessions (end-4a) -------------------------------------------------------------------


def test_end_4a_post_opens_session_202(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: POST then PUT: 202 with ``Location``, ``Docker-Upload-UUID``, ``Range``."""
    response = app.post("/v2/lib/app/blobs/uploads/", headers={"Content-Length": "0"}, status=202)
    match = LOCATION.fullmatch(response.headers["Location"])
    assert match, response.headers["Location"]
    assert response.headers["Docker-Upload-UUID"] == match[1]
    assert response.headers["Range"] == "0-0"
    assert response.headers["Content-Length"] == "0"
    assert "OCI-Chunk-Min-Length" not in response.headers
    assert_api_version(response.headers)


def test_end_4a_post_without_trailing_slash(app: webtest.TestApp) -> None:
    response = app.post("/v2/lib/app/blobs/uploads", status=202)
    assert LOCATION.fullmatch(response.headers["Location"])


def test_end_4a_session_ids_are_unique_and_unguessable(app: webtest.TestApp) -> None:
    ids = {app.post("/v2/lib/app/blobs/uploads/", status=202).headers["Docker-Upload-UUID"]
           for _ in range(20)}
    assert len(ids) == 20
    assert all(len(i) >= 22 for i in ids)  # >= 128 random bits in url-safe base64


def test_end_4a_bad_name_400_name_invalid(app: webtest.TestApp) -> None:
    assert_error(app.post("/v2/Lib/App/blobs/uploads/", status=400), 400, "NAME_INVALID")


class _ChunkyStorage(MemoryStorage):
    min_chunk_size = 5 * 1024 * 1024


def test_end_4c_post_announces_oci_chunk_min_length() -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: ``OCI-Chunk-Min-Length`` if the storage has one."""
    app = webtest.TestApp(Registry(storage=_ChunkyStorage()))
    response = app.post("/v2/lib/app/blobs/uploads/", status=202)
    assert response.headers["OCI-Chunk-Min-Length"] == str(5 * 1024 * 1024)


# -- single POST (end-4b) ----------------------------------------------------------------------


def test_end_4b_monolithic_post_201(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Single POST: 201 with ``Location`` of a pullable blob URL."""
    digest = sha256(DATA)
    response = app.post(f"/v2/lib/app/blobs/uploads/?digest={digest}", DATA,
                        content_type="application/octet-stream", status=201)
    assert response.headers["Location"] == f"http://localhost/v2/lib/app/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert app.get(path_of(response.headers["Location"]), status=200).body == DATA


def test_end_4b_monolithic_post_empty_blob(app: webtest.TestApp) -> None:
    digest = sha256(b"")
    app.post(f"/v2/lib/app/blobs/uploads/?digest={digest}", b"", status=201)
    head = app.head(f"/v2/lib/app/blobs/{digest}", status=200)
    assert head.headers["Content-Length"] == "0"


def test_end_4b_monolithic_post_wrong_digest_stores_nothing(app: webtest.TestApp,
                                                             storage: Storage) -> None:
    """Code-4 DIGEST_INVALID: the bytes do not match; neither digest becomes visible."""
    claimed = sha256(b"something else")
    response = app.post(f"/v2/lib/app/blobs/uploads/?digest={claimed}", DATA, status=400)
    assert_error(response, 400, "DIGEST_INVALID")
    for digest in (claimed, sha256(DATA)):
        assert_error(app.head(f"/v2/lib/app/blobs/{digest}", status=404), 404)
        assert not _blob_key_exists(storage, digest)
    assert list(storage.list("uploads/")) == []


@pytest.mark.parametrize("digest", ["sha256:xyz", "md5:" + "a" * 32, "sha256:" + "A" * 64, ""])
def test_end_4b_invalid_digest_400(app: webtest.TestApp, digest: str) -> None:
    """oci-distribution-spec.md: Pushing blobs: invalid or unsupported digest -> 400."""
    response = app.post(f"/v2/lib/app/blobs/uploads/?digest={digest}", DATA, status=400)
    assert_error(response, 400, "DIGEST_INVALID")


def test_end_4b_body_longer_than_content_length_is_not_500(registry: Registry) -> None:
    """A body whose declared length disagrees with the ``Content-Range`` is SIZE_INVALID."""
    response = raw_call(registry, "POST", "/v2/lib/app/blobs/uploads/", DATA,
                        {"Content-Range": "0-9"}, query=f"digest={sha256(DATA)}")
    assert response.status == 400 and response.error_code == "SIZE_INVALID"


def test_end_4b_short_body_400_nothing_stored(registry: Registry, storage: Storage) -> None:
    """A body that ends before its ``Content-Length`` is the client's broken upload: 400
    BLOB_UPLOAD_INVALID (oci-distribution-spec.md "Error Codes", code-2), and stores nothing."""
    response = raw_call(registry, "POST", "/v2/lib/app/blobs/uploads/", DATA[:10],
                        query=f"digest={sha256(DATA)}", content_length=len(DATA))
    assert response.status == 400 and response.error_code == "BLOB_UPLOAD_INVALID", response.body
    assert not _blob_key_exists(storage, sha256(DATA))
    assert not _blob_key_exists(storage, sha256(DATA[:10]))


# -- POST then PUT (end-6) ---------------------------------------------------------------------


def test_end_6_post_then_put_with_body_201(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: POST then PUT: the PUT carries the whole blob; 201 + ``Location``."""
    location = _session(app)
    digest = sha256(DATA)
    response = app.put(with_query(location, digest=digest), DATA,
                       content_type="application/octet-stream", status=201)
    assert response.headers["Location"] == f"http://localhost/v2/lib/app/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    # docker confirms the layer with HEAD on the blob and ignores Location.
    head = app.head(f"/v2/lib/app/blobs/{digest}", status=200)
    assert head.headers["Content-Length"] == str(len(DATA))
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA
    # The session is over.
    assert_error(app.get(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")


def test_end_6_put_without_body_after_patches(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: the final chunk MAY come by PATCH."""
    location = _session(app)
    location = path_of(_patch(app, location, DATA[:40], 0).headers["Location"])
    location = path_of(_patch(app, location, DATA[40:]).headers["Location"])
    digest = sha256(DATA)
    response = app.put(with_query(location, digest=digest), status=201)
    assert response.headers["Docker-Content-Digest"] == digest
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


def test_end_6_put_with_final_chunk_content_range(app: webtest.TestApp) -> None:
    location = _session(app)
    _patch(app, location, DATA[:50], 0)
    digest = sha256(DATA)
    app.put(with_query(location, digest=digest), DATA[50:],
            headers={"Content-Range": f"50-{len(DATA) - 1}",
                     "Content-Type": "application/octet-stream"}, status=201)
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


def test_end_6_put_final_chunk_out_of_order_416(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: final chunk out of order -> 416."""
    location = _session(app)
    _patch(app, location, DATA[:50], 0)
    response = app.put(with_query(location, digest=sha256(DATA)), DATA[60:],
                       headers={"Content-Range": f"60-{len(DATA) - 1}"}, status=416)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert path_of(response.headers["Location"]) == location
    assert response.headers["Range"] == "0-49"
    status = app.get(location, status=204)
    assert status.headers["Range"] == "0-49"


def test_end_6_put_digest_mismatch_stores_nothing(app: webtest.TestApp, storage: Storage) -> None:
    """Code-4 DIGEST_INVALID on the closing PUT: nothing visible, nothing stored, session gone."""
    location = _session(app)
    _patch(app, location, DATA, 0)
    wrong = sha256(b"not the data")
    assert_error(app.put(with_query(location, digest=wrong), status=400), 400, "DIGEST_INVALID")
    for digest in (wrong, sha256(DATA)):
        assert_error(app.head(f"/v2/lib/app/blobs/{digest}", status=404), 404)
        assert not _blob_key_exists(storage, digest)
    assert_error(app.get(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")


def test_end_6_put_with_body_digest_mismatch_stores_nothing(app: webtest.TestApp,
                                                            storage: Storage) -> None:
    location = _session(app)
    wrong = sha256(b"nope")
    assert_error(app.put(with_query(location, digest=wrong), DATA, status=400), 400, "DIGEST_INVALID")
    assert not _blob_key_exists(storage, wrong)
    assert not _blob_key_exists(storage, sha256(DATA))


def test_end_6_put_without_digest_400_session_intact(app: webtest.TestApp) -> None:
    location = _session(app)
    _patch(app, location, DATA[:10], 0)
    assert_error(app.put(location, status=400), 400, "BLOB_UPLOAD_INVALID")
    assert app.get(location, status=204).headers["Range"] == "0-9"


def test_end_6_put_invalid_digest_400(app: webtest.TestApp) -> None:
    location = _session(app)
    assert_error(app.put(with_query(location, digest="sha256:zz"), status=400), 400, "DIGEST_INVALID")


def test_end_4c_sha512_session(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: ``?digest-algorithm=sha512`` (end-4c), chunks, close with sha512."""
    response = app.post("/v2/lib/app/blobs/uploads/?digest-algorithm=sha512", status=202)
    location = path_of(response.headers["Location"])
    _patch(app, location, DATA[:7], 0)
    _patch(app, location, DATA[7:], 7)
    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    app.put(with_query(location, digest=digest), status=201)
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


def test_end_4c_unsupported_algorithm_400(app: webtest.TestApp) -> None:
    response = app.post("/v2/lib/app/blobs/uploads/?digest-algorithm=md5", status=400)
    assert_error(response, 400, "UNSUPPORTED", "DIGEST_INVALID")


def test_end_6_close_with_other_algorithm_than_opened(app: webtest.TestApp, storage: Storage) -> None:
    """A sha256 session closed with a sha512 digest is verified (re-hash), right or wrong."""
    location = _session(app)
    _patch(app, location, DATA, 0)
    digest = "sha512:" + hashlib.sha512(DATA).hexdigest()
    app.put(with_query(location, digest=digest), status=201)
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA

    location = _session(app)
    _patch(app, location, DATA, 0)
    wrong = "sha512:" + hashlib.sha512(b"other").hexdigest()
    assert_error(app.put(with_query(location, digest=wrong), status=400), 400, "DIGEST_INVALID")
    assert not _blob_key_exists(storage, wrong)
    assert list(storage.list("staging/")) == []


# -- PATCH (end-5) -----------------------------------------------------------------------------


def test_end_5_patch_streamed_202_range_without_unit(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: 202, ``Location``, ``Range: 0-<last>``
    (no ``bytes=`` unit: docker parses it with ``%d-%d``)."""
    location = _session(app)
    response = _patch(app, location, DATA[:10])
    assert response.headers["Range"] == "0-9"
    assert path_of(response.headers["Location"]) == location
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]
    assert response.headers["Content-Length"] == "0"
    response = _patch(app, location, DATA[10:25])
    assert response.headers["Range"] == "0-24"


def test_end_5_patch_with_content_range(app: webtest.TestApp) -> None:
    location = _session(app)
    assert _patch(app, location, DATA[:5], 0).headers["Range"] == "0-4"
    assert _patch(app, location, DATA[5:], 5).headers["Range"] == f"0-{len(DATA) - 1}"
    digest = sha256(DATA)
    app.put(with_query(location, digest=digest), status=201)
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


@pytest.mark.parametrize("start", [1, 5, 11, 100])
def test_end_5_out_of_order_chunk_416_session_intact(app: webtest.TestApp, start: int) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: out of order -> 416; the session, its
    ``Location`` and offset survive, and the right chunk still goes through."""
    location = _session(app)
    _patch(app, location, DATA[:10], 0)
    response = _patch(app, location, DATA[start : start + 5], start, status=416)
    assert_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert path_of(response.headers["Location"]) == location
    assert response.headers["Range"] == "0-9"
    assert app.get(location, status=204).headers["Range"] == "0-9"
    _patch(app, location, DATA[10:], 10)
    app.put(with_query(location, digest=sha256(DATA)), status=201)


def test_end_5_repeated_chunk_416(app: webtest.TestApp) -> None:
    location = _session(app)
    _patch(app, location, DATA[:10], 0)
    assert_error(_patch(app, location, DATA[:10], 0, status=416), 416)
    assert app.get(location, status=204).headers["Range"] == "0-9"


@pytest.mark.parametrize("content_range", ["5-2", "abc", "0-", "-5", "bytes 0-x",
                                           "0-99999999999999999999999", "0-4/3/2", "\u00e9-1"])
def test_end_5_malformed_content_range_400(registry: Registry, content_range: str) -> None:
    """oci-distribution-spec.md: the range MUST match ``^[0-9]+-[0-9]+$``; inverted, overlong or
    garbage is a 400 and the session is unchanged."""
    app = webtest.TestApp(registry)
    location = _session(app)
    response = raw_call(registry, "PATCH", location, b"12345",
                        {"Content-Range": content_range.encode("utf-8").decode("latin-1")})
    assert response.status == 400 and response.error_code == "BLOB_UPLOAD_INVALID", response.body
    assert_api_version(response.headers)
    assert app.get(location, status=204).headers["Range"] == "0-0"


def test_end_5_content_length_disagrees_with_content_range(registry: Registry) -> None:
    """Code-10 SIZE_INVALID: ``Content-Length`` 5 but ``Content-Range`` says 10 bytes."""
    app = webtest.TestApp(registry)
    location = _session(app)
    response = raw_call(registry, "PATCH", location, b"12345", {"Content-Range": "0-9"})
    assert response.status == 400 and response.error_code == "SIZE_INVALID"
    assert app.get(location, status=204).headers["Range"] == "0-0"


def test_end_5_short_body_400_offset_unchanged(registry: Registry) -> None:
    """A body that ends before its ``Content-Length`` is rejected and leaves no bytes behind."""
    app = webtest.TestApp(registry)
    location = _session(app)
    _patch(app, location, DATA[:10], 0)
    response = raw_call(registry, "PATCH", location, DATA[10:15], content_length=20)
    # oci-distribution-spec.md "Error Codes" code-2: the chunk could not be received whole.
    assert response.status == 400 and response.error_code == "BLOB_UPLOAD_INVALID", (response.status, response.body)
    assert_api_version(response.headers)
    assert app.get(location, status=204).headers["Range"] == "0-9"
    _patch(app, location, DATA[10:], 10)
    app.put(with_query(location, digest=sha256(DATA)), status=201)


def test_end_5_short_body_with_content_range_400(registry: Registry) -> None:
    app = webtest.TestApp(registry)
    location = _session(app)
    response = raw_call(registry, "PATCH", location, DATA[:5], {"Content-Range": "0-19"},
                        content_length=20)
    assert response.status == 400 and response.error_code == "BLOB_UPLOAD_INVALID", response.body
    assert app.get(location, status=204).headers["Range"] == "0-0"


def test_end_5_chunked_transfer_encoding_without_content_length(registry: Registry) -> None:
    """PATCH with ``Transfer-Encoding: chunked`` and no ``Content-Length`` (gunicorn sets
    ``wsgi.input_terminated``): every byte is taken."""
    app = webtest.TestApp(registry)
    location = _session(app)
    response = raw_call(registry, "PATCH", location, DATA[:30], chunked=True)
    assert response.status == 202, response.body
    assert response.header("Range") == "0-29"
    response = raw_call(registry, "PATCH", location, DATA[30:], {"Content-Range": f"30-{len(DATA) - 1}"},
                        chunked=True)
    assert response.status == 202, response.body
    digest = sha256(DATA)
    response = raw_call(registry, "PUT", location, b"", query=f"digest={digest}")
    assert response.status == 201, response.body
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


def test_end_6_chunked_final_put(registry: Registry) -> None:
    app = webtest.TestApp(registry)
    location = _session(app)
    digest = sha256(DATA)
    response = raw_call(registry, "PUT", location, DATA, query=f"digest={digest}", chunked=True)
    assert response.status == 201, response.body
    assert app.get(f"/v2/lib/app/blobs/{digest}").body == DATA


def test_end_4b_chunked_monolithic_post(registry: Registry) -> None:
    digest = sha256(DATA)
    response = raw_call(registry, "POST", "/v2/lib/app/blobs/uploads/", DATA,
                        query=f"digest={digest}", chunked=True)
    assert response.status == 201, response.body
    assert webtest.TestApp(registry).get(f"/v2/lib/app/blobs/{digest}").body == DATA


# -- status (end-13) and cancel (end-14) -------------------------------------------------------


def test_end_13_status_204_with_range_and_location(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: GET status is 204, ``Location``, ``Range``."""
    location = _session(app)
    response = app.get(location, status=204)
    assert response.headers["Range"] == "0-0"
    assert path_of(response.headers["Location"]) == location
    assert_api_version(response.headers)
    _patch(app, location, DATA[:33])
    response = app.get(location, status=204)
    assert response.headers["Range"] == "0-32"
    assert response.headers["Docker-Upload-UUID"] == location.rsplit("/", 1)[1]


def test_end_14_cancel_204_then_unknown(app: webtest.TestApp, storage: Storage) -> None:
    """oci-distribution-spec.md: Cancel a blob upload: 204; the session is gone afterwards."""
    location = _session(app)
    _patch(app, location, DATA, 0)
    response = app.delete(location, headers={"Content-Length": "0"}, status=204)
    assert_api_version(response.headers)
    assert_error(app.get(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(_patch(app, location, b"x", status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(app.put(with_query(location, digest=sha256(DATA)), status=404), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(app.delete(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert list(storage.list("uploads/")) == []


@pytest.mark.parametrize("upload_id", ["doesnotexist", "x" * 40, "..", "a.b", "-" * 16, "x" * 600])
def test_end_13_unknown_session_404(app: webtest.TestApp, upload_id: str) -> None:
    """Code-3 BLOB_UPLOAD_UNKNOWN for every method on a session that does not exist."""
    location = f"/v2/lib/app/blobs/uploads/{upload_id}"
    assert_error(app.get(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(app.patch(location, b"abc", status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert_error(app.put(with_query(location, digest=sha256(b"abc")), b"abc", status=404), 404,
                 "BLOB_UPLOAD_UNKNOWN")
    assert_error(app.delete(location, status=404), 404, "BLOB_UPLOAD_UNKNOWN")


def test_sessions_are_bound_to_their_repository(app: webtest.TestApp) -> None:
    """A session of ``lib/app`` is unknown under any other name, and stays usable in its own."""
    location = _session(app)
    upload_id = location.rsplit("/", 1)[1]
    _patch(app, location, DATA[:10], 0)
    for other in ("lib/other", "lib", "lib/app/sub"):
        foreign = f"/v2/{other}/blobs/uploads/{upload_id}"
        assert_error(app.get(foreign, status=404), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(app.patch(foreign, DATA[10:], status=404), 404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(app.put(with_query(foreign, digest=sha256(DATA)), DATA[10:], status=404),
                     404, "BLOB_UPLOAD_UNKNOWN")
        assert_error(app.delete(foreign, status=404), 404, "BLOB_UPLOAD_UNKNOWN")
    assert app.get(location, status=204).headers["Range"] == "0-9"
    _patch(app, location, DATA[10:], 10)
    app.put(with_query(location, digest=sha256(DATA)), status=201)
    assert_error(app.head(f"/v2/lib/other/blobs/{sha256(DATA)}", status=404), 404)


# -- mounts (end-11) ---------------------------------------------------------------------------


def test_end_11_mount_from_other_repository_201(app: webtest.TestApp, client: RegistryClient) -> None:
    """oci-distribution-spec.md: Mounting a blob from another repository: 201 + ``Location``."""
    digest = client.push_blob("source/repo", DATA)
    response = app.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=source/repo", status=201)
    assert response.headers["Location"] == f"http://localhost/v2/target/repo/blobs/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert app.get(f"/v2/target/repo/blobs/{digest}").body == DATA


def test_end_11_mount_fallback_202_with_usable_session(app: webtest.TestApp,
                                                       client: RegistryClient) -> None:
    """oci-distribution-spec.md: unable to mount -> 202, an upload session the client may use."""
    digest = client.push_blob("source/repo", DATA)
    for query in (f"mount={digest}&from=elsewhere", f"mount={sha256(b'unknown')}&from=source/repo"):
        response = app.post(f"/v2/target/repo/blobs/uploads/?{query}", status=202)
        location = path_of(response.headers["Location"])
        assert response.headers["Range"] == "0-0"
        assert location.startswith("/v2/target/repo/blobs/uploads/")
        _patch(app, location, DATA, 0)
        app.put(with_query(location, digest=digest), status=201)
        assert app.get(f"/v2/target/repo/blobs/{digest}").body == DATA
        app.delete(f"/v2/target/repo/blobs/{digest}", status=202)


def test_end_11_mount_without_from_links_known_blob(app: webtest.TestApp, client: RegistryClient) -> None:
    """oci-distribution-spec.md: the registry MAY treat ``from`` as optional (default hook: allowed)."""
    digest = client.push_blob("source/repo", DATA)
    response = app.post(f"/v2/target/repo/blobs/uploads/?mount={digest}", status=201)
    assert response.headers["Docker-Content-Digest"] == digest
    assert app.get(f"/v2/target/repo/blobs/{digest}").body == DATA
    unknown = sha256(b"unknown")
    assert app.post(f"/v2/target/repo/blobs/uploads/?mount={unknown}", status=202)


def test_end_11_mount_without_from_refused_with_auth_hook(recorded_app: webtest.TestApp) -> None:
    """With an auth hook, a bare digest must not grant a blob of a repository one cannot pull: 202."""
    digest = RegistryClient(recorded_app).push_blob("source/repo", DATA)
    response = recorded_app.post(f"/v2/target/repo/blobs/uploads/?mount={digest}", status=202)
    assert response.headers["Location"].startswith("http://localhost/v2/target/repo/blobs/uploads/")
    assert_error(recorded_app.head(f"/v2/target/repo/blobs/{digest}", status=404), 404)


def test_end_11_mount_with_digest_in_body_and_monolithic_fallback(app: webtest.TestApp) -> None:
    """A mount that fails but carries ``digest`` and the body completes monolithically."""
    digest = sha256(DATA)
    response = app.post(f"/v2/target/repo/blobs/uploads/?mount={digest}&from=nowhere&digest={digest}",
                        DATA, content_type="application/octet-stream", status=201)
    assert response.headers["Docker-Content-Digest"] == digest
    assert app.get(f"/v2/target/repo/blobs/{digest}").body == DATA


@pytest.mark.parametrize(("query", "code"), [
    ("mount=sha256:nothex&from=source/repo", "DIGEST_INVALID"),
    (f"mount={sha256(b'x')}&from=../etc", "NAME_INVALID"),
    (f"mount={sha256(b'x')}&from=UPPER", "NAME_INVALID"),
])
def test_end_11_mount_bad_parameters_400(app: webtest.TestApp, query: str, code: str) -> None:
    assert_error(app.post(f"/v2/target/repo/blobs/uploads/?{query}", status=400), 400, code)


# -- hypothesis: any chunking reassembles ------------------------------------------------------


@st.composite
def _chunked_upload(draw: st.DrawFn) -> tuple[bytes, list[tuple[bytes, str]], bool]:
    blob = draw(st.binary(min_size=0, max_size=3000))
    cuts = sorted(draw(st.lists(st.integers(0, len(blob)), max_size=8)))
    bounds = [0, *cuts, len(blob)]
    pieces = [blob[a:b] for a, b in zip(bounds, bounds[1:]) if b > a]
    modes = [draw(st.sampled_from(["range", "stream", "chunked"])) for _ in pieces]
    final_in_put = draw(st.booleans()) and bool(pieces)
    return blob, list(zip(pieces, modes)), final_in_put


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_chunked_upload())
def test_end_5_any_chunking_reassembles_to_the_digest(case: tuple[bytes, list[tuple[bytes, str]], bool]) -> None:
    """oci-distribution-spec.md: Pushing a blob in chunks: any split of any blob, each chunk sent with
    ``Content-Range``, streamed, or ``Transfer-Encoding: chunked``, and the last one optionally in
    the closing PUT, gives back the blob and its digest; a stray out-of-order chunk changes nothing."""
    blob, pieces, final_in_put = case
    registry = Registry(storage=MemoryStorage())
    app = webtest.TestApp(registry)
    location = _session(app)
    offset = 0
    last = pieces.pop() if final_in_put else None
    for piece, mode in pieces:
        headers = {}
        if mode == "range":
            headers["Content-Range"] = f"{offset}-{offset + len(piece) - 1}"
        response = raw_call(registry, "PATCH", location, piece, headers, chunked=mode == "chunked")
        assert response.status == 202, response.body
        offset += len(piece)
        assert response.header("Range") == f"0-{offset - 1}"
        location = path_of(response.header("Location") or "")
        stray = raw_call(registry, "PATCH", location, b"zz", {"Content-Range": f"{offset + 1}-{offset + 2}"})
        assert stray.status == 416
        assert stray.header("Range") == f"0-{offset - 1}"
    digest = sha256(blob)
    if last is None:
        response = raw_call(registry, "PUT", location, b"", query=f"digest={digest}")
    else:
        piece, mode = last
        headers = {"Content-Range": f"{offset}-{offset + len(piece) - 1}"} if mode == "range" else {}
        response = raw_call(registry, "PUT", location, piece, headers, query=f"digest={digest}",
                            chunked=mode == "chunked")
    assert response.status == 201, response.body
    assert response.header("Docker-Content-Digest") == digest
    pulled = app.get(f"/v2/lib/app/blobs/{digest}", status=200)
    assert pulled.body == blob


@pytest.mark.parametrize(("body", "content_range"), [(b"0123456789", "0-4"), (b"012", "0-4")])
def test_end_5_chunked_body_disagreeing_with_content_range(registry: Registry, body: bytes,
                                                           content_range: str) -> None:
    """A chunked body longer or shorter than its ``Content-Range`` is SIZE_INVALID (code-10) and
    leaves no byte behind, in a PATCH and in the closing PUT."""
    app = webtest.TestApp(registry)
    location = _session(app)
    response = raw_call(registry, "PATCH", location, body, {"Content-Range": content_range}, chunked=True)
    assert response.status == 400 and response.error_code == "SIZE_INVALID"
    assert app.get(location, status=204).headers["Range"] == "0-0"
    response = raw_call(registry, "PUT", location, body, {"Content-Range": content_range},
                        query=f"digest={sha256(body[:5])}", chunked=True)
    assert response.status == 400 and response.error_code == "SIZE_INVALID"
    assert app.get(location, status=204).headers["Range"] == "0-0"
    response = raw_call(registry, "PUT", location, b"01234", query=f"digest={sha256(b'01234')}", chunked=True)
    assert response.status == 201
