"""``/v2/<name>/blobs/<digest>``: oci-distribution-spec.md "Pulling blobs" (end-2), "Checking if
content exists in the registry" and "Deleting Blobs" (end-10)."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Iterator

import pytest
import webtest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage
from docker_registry_wsgi.streams import CHUNK_SIZE

from . import RegistryClient, assert_api_version, assert_error, raw_call, sha256

BLOB = bytes(range(256)) * 4 + b"tail"


@pytest.fixture
def pushed(client: RegistryClient) -> str:
    return client.push_blob("lib/app", BLOB)


def test_end_2_get_blob_200_with_digest_and_length(app: webtest.TestApp, pushed: str) -> None:
    """oci-distribution-spec.md: Pulling blobs: 200, body, ``Docker-Content-Digest`` of the body."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", status=200)
    assert response.body == BLOB
    assert response.headers["Docker-Content-Digest"] == pushed == sha256(response.body)
    assert response.headers["Content-Length"] == str(len(BLOB))
    assert response.headers["Content-Type"] == "application/octet-stream"
    assert response.headers["ETag"] == f'"{pushed}"'
    assert response.headers["Accept-Ranges"] == "bytes"
    assert_api_version(response.headers)


def test_end_2_head_blob_has_length_and_digest_no_body(app: webtest.TestApp, pushed: str) -> None:
    """oci-distribution-spec.md: Checking if content exists: HEAD gives digest and Content-Length."""
    response = app.head(f"/v2/lib/app/blobs/{pushed}", status=200)
    assert response.body == b""
    assert response.headers["Content-Length"] == str(len(BLOB))
    assert response.headers["Docker-Content-Digest"] == pushed


def test_end_2_unknown_blob_404_blob_unknown(app: webtest.TestApp) -> None:
    missing = sha256(b"never pushed")
    assert_error(app.get(f"/v2/lib/app/blobs/{missing}", status=404), 404, "BLOB_UNKNOWN")
    assert_error(app.head(f"/v2/lib/app/blobs/{missing}", status=404), 404)


def test_end_2_blob_visible_only_where_linked(app: webtest.TestApp, client: RegistryClient) -> None:
    """Blobs are content-addressed but served only from repositories that received them."""
    digest = client.push_blob("team/a", b"private bytes")
    assert app.get(f"/v2/team/a/blobs/{digest}", status=200).body == b"private bytes"
    assert_error(app.get(f"/v2/team/b/blobs/{digest}", status=404), 404, "BLOB_UNKNOWN")
    assert_error(app.head(f"/v2/team/b/blobs/{digest}", status=404), 404)
    assert_error(app.get(f"/v2/team/blobs/{digest}", status=404), 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize(
    "digest",
    [
        "sha256:abc",
        "sha256:" + "G" * 64,
        "sha256:" + "A" * 64,  # upper-case hex is not canonical
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        "sha384:" + "a" * 96,
        "nodigest",
        ":" + "a" * 64,
        "sha256:" + "a" * 300,
    ],
)
def test_end_2_malformed_or_unsupported_digest_400(app: webtest.TestApp, digest: str) -> None:
    """oci-distribution-spec.md: Pushing blobs: an invalid or unsupported digest is a 400."""
    assert_error(app.get(f"/v2/lib/app/blobs/{digest}", status=400), 400, "DIGEST_INVALID")
    assert_error(app.delete(f"/v2/lib/app/blobs/{digest}", status=400), 400, "DIGEST_INVALID")


# -- Range (RFC 9110 section 14; oci-distribution-spec.md: Pulling blobs) -------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, len(BLOB) - 1),
        ("bytes=-4", len(BLOB) - 4, len(BLOB) - 1),
        ("bytes=100-999999", 100, len(BLOB) - 1),  # an end past the blob is clamped
        (f"bytes={len(BLOB) - 1}-{len(BLOB) - 1}", len(BLOB) - 1, len(BLOB) - 1),
        ("bytes=-99999", 0, len(BLOB) - 1),
        ("Bytes=0-9", 0, 9),  # the range unit is case-insensitive (RFC 9110 14.1)
        ("BYTES=-4", len(BLOB) - 4, len(BLOB) - 1),
        ("bytes=0-" + "9" * 40, 0, len(BLOB) - 1),  # any number of digits (RFC 9110 14.1.1)
        ("bytes=-" + "9" * 40, 0, len(BLOB) - 1),
    ],
)
def test_end_2_range_206_with_content_range(app: webtest.TestApp, pushed: str, header: str,
                                             start: int, end: int) -> None:
    """oci-distribution-spec.md: Pulling blobs: ``Range`` answered with 206 and ``Content-Range``."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=206)
    assert response.body == BLOB[start : end + 1]
    assert response.headers["Content-Range"] == f"bytes {start}-{end}/{len(BLOB)}"
    assert response.headers["Content-Length"] == str(end - start + 1)
    assert response.headers["Docker-Content-Digest"] == pushed
    head = app.head(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=206)
    assert head.headers["Content-Length"] == str(end - start + 1)
    assert head.headers["Content-Range"] == f"bytes {start}-{end}/{len(BLOB)}"


@pytest.mark.parametrize("header", [f"bytes={len(BLOB)}-", f"bytes={len(BLOB) + 5}-{len(BLOB) + 9}",
                                    "bytes=-0", "Bytes=-0", "bytes=" + "9" * 40 + "-"])
def test_end_2_unsatisfiable_range_416(app: webtest.TestApp, pushed: str, header: str) -> None:
    """RFC 9110 15.5.17: a range outside the blob is 416 with ``Content-Range: bytes */N``."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=416)
    assert_error(response, 416, "UNSUPPORTED")
    assert response.headers["Content-Range"] == f"bytes */{len(BLOB)}"
    head = app.head(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=416)
    assert head.headers["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize(
    "header",
    ["bytes=9-2", "bytes=0-1,4-5", "items=0-3", "bytes=", "bytes=a-b", "\x00", "bytes=-",
     "bytes=0-" + "9" * 5000,  # more digits than Python converts
     f"bytes={len(BLOB) + 1}-,{len(BLOB) + 9}-",  # multi-range, even unsatisfiable, is ignored
     "bytes=5-9,0-1", "bytes=0-5,3-9", "bytes=-0,-5"],
)
def test_end_2_ignorable_range_serves_whole_blob(app: webtest.TestApp, pushed: str,
                                                 header: str) -> None:
    """RFC 9110 14.2: an invalid, inverted or unsupported (multi-)range may be ignored: 200, never 500."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=200)
    assert response.body == BLOB
    assert "Content-Range" not in response.headers
    assert_api_version(response.headers)


def test_end_2_range_on_empty_blob_416(app: webtest.TestApp, client: RegistryClient) -> None:
    digest = client.push_blob("lib/app", b"")
    assert app.get(f"/v2/lib/app/blobs/{digest}", status=200).body == b""
    response = app.get(f"/v2/lib/app/blobs/{digest}", headers={"Range": "bytes=0-"}, status=416)
    assert response.headers["Content-Range"] == "bytes */0"


# -- conditional requests (RFC 9110 section 13) ----------------------------------------------


@pytest.mark.parametrize("range_header", ["bytes=0-9", "Bytes=0-9"])
def test_end_2_if_range_matching_206(app: webtest.TestApp, pushed: str, range_header: str) -> None:
    """RFC 9110 13.1.5: an ``If-Range`` that strongly matches the ETag lets the Range apply."""
    headers = {"Range": range_header, "If-Range": f'"{pushed}"'}
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers=headers, status=206)
    assert response.body == BLOB[:10]
    assert response.headers["Content-Range"] == f"bytes 0-9/{len(BLOB)}"


@pytest.mark.parametrize("if_range", [
    '"sha256:' + "0" * 64 + '"',  # another representation
    'W/"{digest}"',  # weak: never matches by strong comparison
    "{digest}",  # unquoted: not an entity-tag
    "Wed, 21 Oct 2015 07:28:00 GMT",  # a date: blobs carry no Last-Modified
])
def test_end_2_if_range_not_matching_200_whole(app: webtest.TestApp, pushed: str, if_range: str) -> None:
    """RFC 9110 13.1.5: when ``If-Range`` does not match, the Range is ignored: the whole 200."""
    headers = {"Range": "bytes=0-9", "If-Range": if_range.format(digest=pushed)}
    for method in ("GET", "HEAD"):
        response = app.request(f"/v2/lib/app/blobs/{pushed}", method=method, headers=headers, status=200)
        assert "Content-Range" not in response.headers
        assert response.headers["Content-Length"] == str(len(BLOB))
    assert app.get(f"/v2/lib/app/blobs/{pushed}", headers=headers).body == BLOB


def test_end_2_if_range_mismatch_also_skips_the_416(app: webtest.TestApp, pushed: str) -> None:
    """RFC 9110 13.1.5: with a failed If-Range the Range is ignored, satisfiable or not."""
    headers = {"Range": f"bytes={len(BLOB)}-", "If-Range": '"sha256:' + "0" * 64 + '"'}
    assert app.get(f"/v2/lib/app/blobs/{pushed}", headers=headers, status=200).body == BLOB


def test_end_2_if_range_without_range_is_ignored(app: webtest.TestApp, pushed: str) -> None:
    """RFC 9110 13.1.5: "A server MUST ignore an If-Range header field received in a request
    that does not contain a Range header field"."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers={"If-Range": f'"{pushed}"'}, status=200)
    assert response.body == BLOB


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("extra", [{}, {"Range": "bytes=0-9"}, {"Range": f"bytes={len(BLOB)}-"}])
@pytest.mark.parametrize("if_none_match", ['"{digest}"', 'W/"{digest}"', '"sha256:{other}", "{digest}"', "*"])
def test_end_2_if_none_match_304(app: webtest.TestApp, pushed: str, method: str, extra: dict[str, str],
                                 if_none_match: str) -> None:
    """RFC 9110 13.1.2 (weak comparison, lists, ``*``), 13.2.2 (evaluated before Range), 15.4.5:
    304 with the ETag, ``Docker-Content-Digest`` and ``Cache-Control`` of the 200, no body."""
    headers = {"If-None-Match": if_none_match.format(digest=pushed, other="0" * 64), **extra}
    response = app.request(f"/v2/lib/app/blobs/{pushed}", method=method, headers=headers, status=304)
    assert response.body == b""
    assert response.headers["ETag"] == f'"{pushed}"'
    assert response.headers["Docker-Content-Digest"] == pushed
    assert response.headers["Cache-Control"] == "max-age=31536000"
    assert not {"Content-Length", "Content-Range", "Content-Type"} & set(response.headers)
    assert_api_version(response.headers)


def test_end_2_if_none_match_other_tag_200(app: webtest.TestApp, pushed: str) -> None:
    """RFC 9110 13.1.2: a list without this blob's tag holds: the full answer."""
    headers = {"If-None-Match": '"sha256:' + "0" * 64 + '", W/"other"'}
    assert app.get(f"/v2/lib/app/blobs/{pushed}", headers=headers, status=200).body == BLOB


def test_end_2_if_none_match_on_unknown_blob_404(app: webtest.TestApp) -> None:
    """RFC 9110 13.2.1: preconditions are ignored when the answer would not be 2xx."""
    missing = sha256(b"never pushed")
    response = app.get(f"/v2/lib/app/blobs/{missing}", headers={"If-None-Match": "*"}, status=404)
    assert_error(response, 404, "BLOB_UNKNOWN")


@pytest.mark.parametrize("headers", [
    {},
    {"Range": "bytes=0-9"},
    {"Range": "Bytes=-4"},
    {"Range": "bytes=0-1,4-5"},
    {"Range": "bytes=99999-"},
    {"Range": "bytes=0-9", "If-Range": '"sha256:' + "0" * 64 + '"'},
    {"If-None-Match": "*"},
])
def test_end_2_head_answers_the_headers_of_get(app: webtest.TestApp, pushed: str,
                                               headers: dict[str, str]) -> None:
    """RFC 9110 9.3.2: HEAD sends the status and header fields GET would send, without the body."""
    get = app.get(f"/v2/lib/app/blobs/{pushed}", headers=headers, expect_errors=True)
    head = app.head(f"/v2/lib/app/blobs/{pushed}", headers=headers, expect_errors=True)
    assert head.status_int == get.status_int

    def fields(response: webtest.TestResponse) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headerlist if k != "X-Request-ID")  # one per request

    assert fields(head) == fields(get)
    assert head.body == b""


# -- ranges against a reference slice, over memory and filesystem storage -----------------------

#: Larger than the storage read size, so ranges cross a read boundary.
BIG = bytes((i * 7 + i // 251) % 256 for i in range(CHUNK_SIZE + 5000))


@pytest.fixture
def big(client: RegistryClient) -> str:
    return client.push_blob("lib/big", BIG)


positions = st.one_of(st.integers(0, 64), st.integers(CHUNK_SIZE - 64, CHUNK_SIZE + 64),
                      st.integers(len(BIG) - 64, len(BIG) + 64), st.integers(0, len(BIG) + 100))
range_specs = st.one_of(
    st.tuples(st.just("suffix"), st.none(), positions),
    st.tuples(st.just("open"), positions, st.none()),
    st.tuples(st.just("closed"), positions, positions),
)


def _spec_text(spec: tuple[str, int | None, int | None]) -> str:
    kind, first, last = spec
    return f"-{last}" if kind == "suffix" else f"{first}-" if kind == "open" else f"{first}-{last}"


def _reference(data: bytes, spec: tuple[str, int | None, int | None]) -> tuple[int, bytes]:
    """What RFC 9110 14.1.2 selects of ``data`` by plain slicing: (206, bytes), (416, b""), or
    (200, data) for an invalid range-spec that is ignored."""
    kind, first, last = spec
    if kind == "suffix":
        assert last is not None
        return (206, data[-last:]) if last > 0 and data else (416, b"")
    assert first is not None
    if kind == "closed":
        assert last is not None
        if last < first:
            return 200, data
    if first >= len(data):
        return 416, b""
    return 206, data[first:] if kind == "open" else data[first : last + 1]  # type: ignore[operator]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(range_specs, min_size=1, max_size=3), unit=st.sampled_from(["bytes", "Bytes", "BYTES"]))
@example(specs=[("closed", CHUNK_SIZE - 1, CHUNK_SIZE)], unit="bytes")
@example(specs=[("suffix", None, 0)], unit="bytes")
@example(specs=[("open", len(BIG), None)], unit="bytes")
def test_end_2_random_ranges_match_a_reference_slice(app: webtest.TestApp, big: str, unit: str,
                                                     specs: list[tuple[str, int | None, int | None]]) -> None:
    """RFC 9110 14.1.2, 14.2, 15.3.7, 15.5.17 through the app, byte for byte against slicing:
    one range gives 206 (or 416 with ``bytes */N``), several the whole blob (200), never a 500."""
    header = f"{unit}=" + ",".join(_spec_text(spec) for spec in specs)
    response = app.get(f"/v2/lib/big/blobs/{big}", headers={"Range": header}, expect_errors=True)
    status, expected = _reference(BIG, specs[0]) if len(specs) == 1 else (200, BIG)
    assert response.status_int == status, header
    if status == 416:
        assert_error(response, 416, "UNSUPPORTED")
        assert response.headers["Content-Range"] == f"bytes */{len(BIG)}"
        return
    assert response.body == expected
    assert response.headers["Content-Length"] == str(len(expected))
    if status == 206:
        start = len(BIG) - len(expected) if specs[0][0] == "suffix" else specs[0][1]
        assert response.headers["Content-Range"] == f"bytes {start}-{start + len(expected) - 1}/{len(BIG)}"
    else:
        assert "Content-Range" not in response.headers


class _SendfileWrapper:
    """``wsgi.file_wrapper`` as gunicorn's: the server sends ``Content-Length`` bytes of the file
    from ``tell()`` with ``sendfile``, never calling ``read``."""

    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike

    def __iter__(self) -> Iterator[bytes]:
        raise AssertionError("a server with sendfile does not iterate the wrapper")

    def close(self) -> None:
        self.filelike.close()


def _serve_with_sendfile(app: Registry, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Call the app as gunicorn does when the body is a ``wsgi.file_wrapper`` with a file."""
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SCRIPT_NAME": "", "QUERY_STRING": "",
               "SERVER_NAME": "localhost", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "HTTP_HOST": "localhost", "wsgi.url_scheme": "http", "wsgi.input": None,
               "wsgi.file_wrapper": _SendfileWrapper,
               **{"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}}
    captured: dict[str, Any] = {}
    result = app(environ, lambda status, response_headers, exc_info=None: captured.update(
        status=int(status.split()[0]), headers=dict(response_headers)))
    try:
        assert isinstance(result, _SendfileWrapper), type(result)
        length = int(captured["headers"]["Content-Length"])
        body = os.pread(result.filelike.fileno(), length, result.filelike.tell())
    finally:
        result.close()
    return captured["status"], captured["headers"], body


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9),
    ("Bytes=5-", 5, len(BIG) - 1),
    (f"bytes={CHUNK_SIZE - 3}-{CHUNK_SIZE + 3}", CHUNK_SIZE - 3, CHUNK_SIZE + 3),
    ("bytes=-100", len(BIG) - 100, len(BIG) - 1),
])
def test_end_2_ranges_through_the_sendfile_path(tmp_path: Any, header: str, start: int, end: int) -> None:
    """Filesystem blobs go out through ``wsgi.file_wrapper`` (sendfile from ``fileno()`` at
    ``tell()`` for ``Content-Length`` bytes): a range must position and bound the file for it."""
    registry = Registry(storage=FilesystemStorage(tmp_path / "registry"))
    digest = RegistryClient(webtest.TestApp(registry)).push_blob("lib/big", BIG)
    status, headers, body = _serve_with_sendfile(registry, f"/v2/lib/big/blobs/{digest}", {"Range": header})
    assert (status, body) == (206, BIG[start : end + 1])
    assert headers["Content-Range"] == f"bytes {start}-{end}/{len(BIG)}"
    status, headers, body = _serve_with_sendfile(
        registry, f"/v2/lib/big/blobs/{digest}", {"Range": header, "If-Range": '"sha256:' + "0" * 64 + '"'})
    assert (status, body) == (200, BIG)


# -- redirects ---------------------------------------------------------------------------------


class _RedirectingStorage(MemoryStorage):
    """A backend that can hand out its own URLs (as S3 presigns them)."""

    def redirect_url(self, key: str, *, method: str = "GET") -> str | None:
        return f"https://blobs.example/{key}?signed=1"


def test_end_2_get_redirects_307_to_storage_url() -> None:
    """API: registries MAY redirect (RFC 9110 15.4); HEAD still answers locally with the size."""
    app = webtest.TestApp(Registry(storage=_RedirectingStorage()))
    digest = RegistryClient(app).push_blob("lib/app", BLOB)
    hexa = digest.split(":")[1]
    response = app.get(f"/v2/lib/app/blobs/{digest}", status=307)
    assert response.headers["Location"] == f"https://blobs.example/blobs/sha256/{hexa[:2]}/{hexa}?signed=1"
    assert response.headers["Docker-Content-Digest"] == digest
    assert_api_version(response.headers)
    head = app.head(f"/v2/lib/app/blobs/{digest}", status=200)
    assert head.headers["Content-Length"] == str(len(BLOB))
    # RFC 9110 13.2.1: preconditions are ignored when the answer would not be 2xx (here 307).
    conditional = app.get(f"/v2/lib/app/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'}, status=307)
    assert conditional.headers["Location"] == response.headers["Location"]
    assert app.head(f"/v2/lib/app/blobs/{digest}", headers={"If-None-Match": f'"{digest}"'}, status=304)
    # Not linked here: 404, not a redirect that would leak the blob.
    assert_error(app.get(f"/v2/other/blobs/{digest}", status=404), 404, "BLOB_UNKNOWN")


# -- delete (end-10) -------------------------------------------------------------------------


def test_end_10_delete_blob_202_then_404(app: webtest.TestApp, pushed: str) -> None:
    """oci-distribution-spec.md: Deleting Blobs: 202, then the blob is gone; again is 404."""
    response = app.delete(f"/v2/lib/app/blobs/{pushed}", status=202)
    assert_api_version(response.headers)
    assert_error(app.get(f"/v2/lib/app/blobs/{pushed}", status=404), 404, "BLOB_UNKNOWN")
    assert_error(app.head(f"/v2/lib/app/blobs/{pushed}", status=404), 404)
    assert_error(app.delete(f"/v2/lib/app/blobs/{pushed}", status=404), 404, "BLOB_UNKNOWN")


def test_end_10_delete_unlinks_only_this_repository(app: webtest.TestApp, client: RegistryClient) -> None:
    digest = client.push_blob("one", b"shared")
    assert client.push_blob("two", b"shared") == digest
    app.delete(f"/v2/one/blobs/{digest}", status=202)
    assert_error(app.get(f"/v2/one/blobs/{digest}", status=404), 404)
    assert app.get(f"/v2/two/blobs/{digest}", status=200).body == b"shared"


def test_end_10_delete_unknown_blob_404(app: webtest.TestApp) -> None:
    assert_error(app.delete(f"/v2/lib/app/blobs/{sha256(b'x')}", status=404), 404, "BLOB_UNKNOWN")


def test_end_2_sha512_blob(app: webtest.TestApp) -> None:
    """oci-image-spec-descriptor.md: Digests: sha512 blobs are pushed and served by their digest."""
    data = b"sha512 content" * 10
    digest = "sha512:" + hashlib.sha512(data).hexdigest()
    app.post(f"/v2/lib/app/blobs/uploads/?digest={digest}", data,
             content_type="application/octet-stream", status=201)
    response = app.get(f"/v2/lib/app/blobs/{digest}", status=200)
    assert response.body == data
    assert response.headers["Docker-Content-Digest"] == digest


class CountingStorage(MemoryStorage):
    """A memory storage that counts ``size`` calls per key (to see how often a request stats a link)."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: dict[str, int] = {}

    def size(self, key: str) -> int:
        self.sizes[key] = self.sizes.get(key, 0) + 1
        return super().size(key)


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=2-5"}])
def test_a_blob_get_stats_its_link_once(headers: dict[str, str]) -> None:
    """A ``GET`` reads the blob's link and size once each: the content layer hands the handler a blob to serve."""
    storage = CountingStorage()
    app = webtest.TestApp(Registry(storage=storage))
    data = b"0123456789"
    digest = RegistryClient(app).push_blob("lib/app", data)
    storage.sizes.clear()
    response = app.get(f"/v2/lib/app/blobs/{digest}", headers=headers)
    assert response.body == (data[2:6] if headers else data)
    links = {k: n for k, n in storage.sizes.items() if "/_layers/" in k}
    blobs = {k: n for k, n in storage.sizes.items() if k.startswith("blobs/")}
    assert list(links.values()) == [1] and list(blobs.values()) == [1], storage.sizes
