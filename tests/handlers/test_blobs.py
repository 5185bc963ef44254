"""``/v2/<name>/blobs/<digest>``: oci-distribution-spec.md "Pulling blobs" (end-2), "Checking if
content exists in the registry" and "Deleting Blobs" (end-10)."""

from __future__ import annotations

import hashlib

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import MemoryStorage

from . import RegistryClient, assert_api_version, assert_error, sha256

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
                                    "bytes=-0"])
def test_end_2_unsatisfiable_range_416(app: webtest.TestApp, pushed: str, header: str) -> None:
    """RFC 9110 15.5.17: a range outside the blob is 416 with ``Content-Range: bytes */N``."""
    response = app.get(f"/v2/lib/app/blobs/{pushed}", headers={"Range": header}, status=416)
    assert_error(response, 416)
    assert response.headers["Content-Range"] == f"bytes */{len(BLOB)}"


@pytest.mark.parametrize(
    "header",
    ["bytes=9-2", "bytes=0-1,4-5", "items=0-3", "bytes=", "bytes=a-b",
     "bytes=0-" + "9" * 40, "bytes=" + "9" * 40 + "-", "\x00", "bytes=-"],
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
