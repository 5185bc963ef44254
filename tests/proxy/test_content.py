"""The cache's answers, request by request: manifests by tag and digest, tag TTLs, tag lists,
blob HEADs, the upstream down or gone, read-only namespaces, ordinary names beside them.

Spec references: OCI distribution spec "Pulling manifests" / "Pulling blobs" / "Listing Tags";
docker-registry-http-api-v2.md "PUT Manifest", "DELETE Manifest", "Initiate Blob Upload",
"DELETE Blob": *On Failure: Not allowed* (405 ``UNSUPPORTED`` for a pull-through cache).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import pytest
import webtest
from werkzeug.wrappers import Request

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import PULL, Access
from docker_registry_wsgi.errors import Denied
from docker_registry_wsgi.proxy import Mirror, Mirrors
from docker_registry_wsgi.storage import FilesystemStorage, Storage
from docker_registry_wsgi.usage import record_key
from tests.handlers import OCI_MANIFEST, RecordingAuth, RegistryClient, assert_error, sha256

from .conftest import TTL, settle
from .upstreams import FakeClock, UpstreamSite

ACCEPT = {"Accept": OCI_MANIFEST}


def test_manifest_by_tag_is_fetched_once_then_served_from_the_cache(
        upstream: UpstreamSite, client: webtest.TestApp, storage: Storage) -> None:
    image = upstream.seed.push_image("lib/app", "v1")
    first = client.get("/v2/up/lib/app/manifests/v1", headers=ACCEPT)
    assert first.body == image.body
    assert first.headers["Docker-Content-Digest"] == image.digest
    assert first.content_type == OCI_MANIFEST
    again = client.get("/v2/up/lib/app/manifests/v1", headers=ACCEPT)
    by_digest = client.get(f"/v2/up/lib/app/manifests/{image.digest}", headers=ACCEPT)
    assert again.body == by_digest.body == image.body
    # One HEAD to learn the digest, one GET of the bytes; nothing more within the TTL.
    assert upstream.count("HEAD", "/manifests/") == 1
    assert upstream.count("GET", "/manifests/") == 1
    assert storage.read(f"blobs/sha256/{image.digest[7:9]}/{image.digest[7:]}") == image.body


def test_manifest_by_digest_is_cached_for_good(upstream: UpstreamSite, client: webtest.TestApp,
                                               clock: FakeClock) -> None:
    image = upstream.seed.push_image("lib/app", None)
    assert client.get(f"/v2/up/lib/app/manifests/{image.digest}").body == image.body
    clock.advance(365 * 86400)
    head = client.head(f"/v2/up/lib/app/manifests/{image.digest}")
    assert head.headers["Content-Length"] == str(len(image.body))
    assert upstream.count("GET", "/manifests/") == 1
    assert upstream.count("HEAD", "/manifests/") == 0


def test_tag_moved_upstream_is_seen_only_after_its_ttl(upstream: UpstreamSite, client: webtest.TestApp,
                                                       clock: FakeClock) -> None:
    old = upstream.seed.push_image("lib/app", "v1", layers=[b"old layer"])
    assert client.get("/v2/up/lib/app/manifests/v1").headers["Docker-Content-Digest"] == old.digest
    new = upstream.seed.push_image("lib/app", "v1", layers=[b"new layer"])
    clock.advance(TTL - 1)
    assert client.get("/v2/up/lib/app/manifests/v1").headers["Docker-Content-Digest"] == old.digest
    clock.advance(2)
    moved = client.get("/v2/up/lib/app/manifests/v1")
    assert moved.headers["Docker-Content-Digest"] == new.digest
    assert moved.body == new.body
    # The old manifest stays cached by digest.
    assert client.get(f"/v2/up/lib/app/manifests/{old.digest}").body == old.body


def test_unchanged_tag_is_revalidated_with_a_head_only(upstream: UpstreamSite, client: webtest.TestApp,
                                                       clock: FakeClock) -> None:
    upstream.seed.push_image("lib/app", "v1")
    client.get("/v2/up/lib/app/manifests/v1")
    for _ in range(3):
        clock.advance(TTL + 1)
        client.get("/v2/up/lib/app/manifests/v1")
    assert upstream.count("HEAD", "/manifests/v1") == 4
    assert upstream.count("GET", "/manifests/") == 1


def test_stale_tag_is_served_when_the_upstream_is_down(upstream: UpstreamSite, client: webtest.TestApp,
                                                       clock: FakeClock, caplog: pytest.LogCaptureFixture) -> None:
    image = upstream.seed.push_image("lib/app", "v1")
    client.get("/v2/up/lib/app/manifests/v1")
    upstream.stop()
    clock.advance(TTL * 10)
    with caplog.at_level(logging.WARNING, logger="docker_registry_wsgi.proxy"):
        response = client.get("/v2/up/lib/app/manifests/v1")
    assert response.body == image.body
    assert any("serving up/lib/app:v1 from the cache" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records), caplog.text


def test_miss_while_the_upstream_is_down_names_the_failure(upstream: UpstreamSite,
                                                            client: webtest.TestApp) -> None:
    url = upstream.url
    upstream.stop()
    error = assert_error(client.get("/v2/up/lib/app/manifests/v1", expect_errors=True), 502, "UNAVAILABLE")
    assert url in error["message"] and "cannot reach" in error["message"]
    blob = assert_error(client.get(f"/v2/up/lib/app/blobs/{sha256(b'x')}", expect_errors=True), 502, "UNAVAILABLE")
    assert url in blob["message"]


def test_missing_upstream_content_is_404_with_the_resources_code(upstream: UpstreamSite,
                                                                 client: webtest.TestApp) -> None:
    upstream.seed.push_image("lib/app", "v1")
    assert_error(client.get("/v2/up/lib/app/manifests/nope", expect_errors=True), 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/up/lib/app/manifests/{sha256(b'nope')}", expect_errors=True),
                 404, "MANIFEST_UNKNOWN")
    assert_error(client.get(f"/v2/up/lib/app/blobs/{sha256(b'nope')}", expect_errors=True), 404, "BLOB_UNKNOWN")
    assert_error(client.head(f"/v2/up/lib/app/blobs/{sha256(b'nope')}", expect_errors=True), 404)
    assert_error(client.get("/v2/up/lib/none/tags/list", expect_errors=True), 404, "NAME_UNKNOWN")


def test_tag_deleted_upstream_is_dropped_from_the_cache(upstream: UpstreamSite, client: webtest.TestApp,
                                                        clock: FakeClock) -> None:
    upstream.seed.push_image("lib/app", "v1")
    client.get("/v2/up/lib/app/manifests/v1")
    upstream.seed.app.delete("/v2/lib/app/manifests/v1", status=202)
    clock.advance(TTL + 1)
    assert_error(client.get("/v2/up/lib/app/manifests/v1", expect_errors=True), 404, "MANIFEST_UNKNOWN")
    upstream.stop()  # not served stale either: the upstream said it is gone
    assert_error(client.get("/v2/up/lib/app/manifests/v1", expect_errors=True), 502, "UNAVAILABLE")


def test_corrupted_manifest_is_refused_and_not_stored(upstream: UpstreamSite, client: webtest.TestApp,
                                                      tmp_path: Path, storage: Storage) -> None:
    image = upstream.seed.push_image("lib/app", None)
    stored = tmp_path / "upstream" / "blobs" / "sha256" / image.digest[7:9] / image.digest[7:]
    stored.write_bytes(image.body.replace(b"layer", b"LAYER"))
    error = assert_error(client.get(f"/v2/up/lib/app/manifests/{image.digest}", expect_errors=True),
                         502, "UNAVAILABLE")
    assert "does not match" in error["message"]
    assert list(storage.list("repositories/")) == []
    assert list(storage.list("blobs/")) == []


def test_blob_head_miss_asks_the_upstream_and_stores_nothing(upstream: UpstreamSite, client: webtest.TestApp,
                                                             storage: Storage) -> None:
    digest = upstream.seed.push_blob("lib/app", b"some layer bytes")
    head = client.head(f"/v2/up/lib/app/blobs/{digest}")
    assert head.headers["Content-Length"] == "16"
    assert head.headers["Docker-Content-Digest"] == digest
    assert upstream.count("HEAD", f"/blobs/{digest}") == 1
    assert list(storage.list("blobs/")) == []


def test_blob_get_is_cached_and_touched(upstream: UpstreamSite, client: webtest.TestApp, storage: Storage,
                                        mirrors: Mirrors) -> None:
    data = bytes(range(256)) * 9000
    digest = upstream.seed.push_blob("lib/app", data)
    assert client.get(f"/v2/up/lib/app/blobs/{digest}").body == data
    settle(mirrors)
    storage.delete(record_key(digest))
    # Another process (which has not seen the record fresh, as the first one remembers) pulls.
    other = webtest.TestApp(Registry(storage, mirrors=mirrors))
    assert other.get(f"/v2/up/lib/app/blobs/{digest}").body == data
    assert other.get(f"/v2/up/lib/app/blobs/{digest}", headers={"Range": "bytes=10-19"}).body == data[10:20]
    assert upstream.count("GET", f"/blobs/{digest}") == 1
    # A pull through the cache records the digest as used, as a HEAD of a pushed blob does.
    assert json.loads(storage.read(record_key(digest)))["touched"] > 0


def test_range_request_on_a_miss_gets_its_range(upstream: UpstreamSite, client: webtest.TestApp) -> None:
    data = bytes(range(256)) * 20000
    digest = upstream.seed.push_blob("lib/app", data)
    start = (3 << 20) + 5
    response = client.get(f"/v2/up/lib/app/blobs/{digest}", headers={"Range": f"bytes={start}-{start + 99}"})
    assert response.status_int == 206
    assert response.body == data[start:start + 100]
    assert client.get(f"/v2/up/lib/app/blobs/{digest}").body == data


def test_blob_stored_for_another_repository_is_linked_after_the_upstream_confirms(
        upstream: UpstreamSite, client: webtest.TestApp) -> None:
    data = b"a shared base layer"
    digest = upstream.seed.push_blob("lib/one", data)
    upstream.seed.app.post(f"/v2/lib/two/blobs/uploads/?mount={digest}&from=lib/one", status=201)
    assert client.get(f"/v2/up/lib/one/blobs/{digest}").body == data
    assert client.get(f"/v2/up/lib/two/blobs/{digest}").body == data
    assert upstream.count("GET", f"/blobs/{digest}") == 1
    assert upstream.count("HEAD", f"/v2/lib/two/blobs/{digest}") == 1


def test_private_blob_is_not_served_through_a_mirror_by_its_digest(
        upstream: UpstreamSite, client: webtest.TestApp, cache: Registry) -> None:
    """A digest pushed to an ordinary repository is only served below a mirror if the upstream has it."""
    secret = RegistryClient(client).push_blob("private/stuff", b"not for everyone")
    assert_error(client.get(f"/v2/up/lib/app/blobs/{secret}", expect_errors=True), 404, "BLOB_UNKNOWN")
    assert upstream.count("HEAD", f"/v2/lib/app/blobs/{secret}") == 1
    assert upstream.count("GET", "/blobs/") == 0


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/v2/up/lib/app/manifests/v1"),
    ("DELETE", "/v2/up/lib/app/manifests/v1"),
    ("DELETE", f"/v2/up/lib/app/blobs/{sha256(b'x')}"),
    ("POST", "/v2/up/lib/app/blobs/uploads/"),
    ("POST", f"/v2/up/lib/app/blobs/uploads/?mount={sha256(b'x')}&from=lib/other"),
    ("PATCH", "/v2/up/lib/app/blobs/uploads/aaaaaaaaaaaaaaaaaaaaaaaa"),
    ("PUT", f"/v2/up/lib/app/blobs/uploads/aaaaaaaaaaaaaaaaaaaaaaaa?digest={sha256(b'x')}"),
    ("DELETE", "/v2/up/lib/app/blobs/uploads/aaaaaaaaaaaaaaaaaaaaaaaa"),
])
def test_writes_to_a_mirrored_namespace_are_405_unsupported(
        method: str, path: str, storage: Storage, mirrors: Mirrors, upstream: UpstreamSite) -> None:
    auth = RecordingAuth()
    app = webtest.TestApp(Registry(storage, auth=auth, mirrors=mirrors))
    response = app.request(path, method=method, body=b"{}", expect_errors=True)
    error = assert_error(response, 405, "UNSUPPORTED")
    assert "read-only mirror" in error["message"]
    assert "PUT" not in response.headers["Allow"] and "DELETE" not in response.headers["Allow"]
    assert auth.calls == []  # refused before the hook: the answer is the same for everyone
    assert upstream.requests == []


def test_namespace_itself_is_not_a_repository(client: webtest.TestApp) -> None:
    assert_error(client.get("/v2/up/manifests/v1", expect_errors=True), 404, "NAME_UNKNOWN")
    assert_error(client.put("/v2/up/manifests/v1", b"{}", expect_errors=True), 405, "UNSUPPORTED")


def test_names_outside_the_namespace_are_ordinary_repositories(client: webtest.TestApp,
                                                                upstream: UpstreamSite) -> None:
    pusher = RegistryClient(client)
    for name in ("team/app", "upstream/app", "u/p"):
        image = pusher.push_image(name, "v1")
        assert client.get(f"/v2/{name}/manifests/v1").body == image.body
        client.delete(f"/v2/{name}/manifests/{image.digest}", status=202)
    assert upstream.requests == []


def test_longest_namespace_wins(upstream: UpstreamSite, storage: Storage, clock: FakeClock,
                                tmp_path: Path) -> None:
    other = UpstreamSite(Registry(FilesystemStorage(tmp_path / "other"))).start()
    try:
        mirrors = Mirrors([Mirror("up", upstream.url), Mirror("up/special", other.url)], clock=clock)
        app = webtest.TestApp(Registry(storage, mirrors=mirrors))
        one = upstream.seed.push_image("lib/app", "v1", layers=[b"from the first"])
        two = other.seed.push_image("app", "v1", layers=[b"from the second"])
        assert app.get("/v2/up/lib/app/manifests/v1").body == one.body
        assert app.get("/v2/up/special/app/manifests/v1").body == two.body
    finally:
        other.stop()


def test_remote_url_mirrors_every_name(upstream: UpstreamSite, storage: Storage, clock: FakeClock) -> None:
    app = webtest.TestApp(Registry(storage, mirrors=Mirrors([Mirror("", upstream.url)], clock=clock)))
    image = upstream.seed.push_image("library/alpine", "3.20")
    assert app.get("/v2/library/alpine/manifests/3.20").body == image.body
    assert_error(app.put("/v2/team/app/manifests/v1", b"{}", expect_errors=True), 405, "UNSUPPORTED")


def test_auth_hook_is_asked_for_pull_on_the_local_name(upstream: UpstreamSite, storage: Storage,
                                                       mirrors: Mirrors) -> None:
    class OnlyApp(RecordingAuth):
        def authorize(self, request: Request, needed: Sequence[Access]) -> object:
            super().authorize(request, needed)
            if any(a.name != "up/lib/app" for a in needed):
                raise Denied()
            return None

    auth = OnlyApp()
    app = webtest.TestApp(Registry(storage, auth=auth, mirrors=mirrors))
    upstream.seed.push_image("lib/app", "v1")
    upstream.seed.push_image("lib/other", "v1")
    app.get("/v2/up/lib/app/manifests/v1")
    assert auth.last == [Access.repository("up/lib/app", PULL)]
    assert_error(app.get("/v2/up/lib/other/manifests/v1", expect_errors=True), 403, "DENIED")
    assert upstream.count("HEAD", "/v2/lib/other/") == 0


def test_tag_list_comes_from_the_upstream_and_from_the_cache_when_it_is_down(
        upstream: UpstreamSite, client: webtest.TestApp, caplog: pytest.LogCaptureFixture) -> None:
    for tag in ("a", "b", "c"):
        upstream.seed.push_image("lib/app", tag, layers=[tag.encode()])
    page = client.get("/v2/up/lib/app/tags/list?n=2")
    assert page.json == {"name": "up/lib/app", "tags": ["a", "b"]}
    assert page.headers["Link"] == '<http://localhost/v2/up/lib/app/tags/list?n=2&last=b>; rel="next"'
    assert client.get("/v2/up/lib/app/tags/list?n=2&last=b").json["tags"] == ["c"]
    client.get("/v2/up/lib/app/manifests/b")
    upstream.stop()
    with caplog.at_level(logging.WARNING, logger="docker_registry_wsgi.proxy"):
        assert client.get("/v2/up/lib/app/tags/list").json["tags"] == ["b"]
    assert "from the cache" in caplog.text


def test_index_and_children_are_cached(upstream: UpstreamSite, client: webtest.TestApp) -> None:
    amd = upstream.seed.push_image("lib/app", None, layers=[b"amd64"])
    arm = upstream.seed.push_image("lib/app", None, layers=[b"arm64"])
    index = upstream.seed.push_index("lib/app", "multi", [amd, arm])
    assert client.get("/v2/up/lib/app/manifests/multi").body == index.body
    for child in (amd, arm):
        assert client.get(f"/v2/up/lib/app/manifests/{child.digest}").body == child.body
        for digest, data in child.blobs.items():
            assert client.get(f"/v2/up/lib/app/blobs/{digest}").body == data
    upstream.stop()
    assert client.get("/v2/up/lib/app/manifests/multi").body == index.body
    for child in (amd, arm):
        for digest, data in child.blobs.items():
            assert client.get(f"/v2/up/lib/app/blobs/{digest}").body == data


def test_referrers_of_cached_manifests_are_indexed(upstream: UpstreamSite, client: webtest.TestApp) -> None:
    image = upstream.seed.push_image("lib/app", "v1")
    subject = {"mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.body)}
    signature = upstream.seed.push_image("lib/app", None, layers=[b"sig"], subject=subject,
                                         artifact_type="application/example.signature")
    client.get(f"/v2/up/lib/app/manifests/{signature.digest}")
    listed = client.get(f"/v2/up/lib/app/referrers/{image.digest}").json["manifests"]
    assert [d["digest"] for d in listed] == [signature.digest]


def test_unsatisfiable_range_on_a_miss_leaves_the_fill_free(upstream: UpstreamSite, storage: Storage,
                                                            clock: FakeClock) -> None:
    """The request answers 416 without reading its live stream; the fill must not wait for it."""
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock, stall_timeout=3600)
    app = webtest.TestApp(Registry(storage, mirrors=mirrors))
    data = bytes(range(256)) * 40000
    digest = upstream.seed.push_blob("lib/app", data)
    response = app.get(f"/v2/up/lib/app/blobs/{digest}", headers={"Range": f"bytes={len(data) + 10}-"},
                       expect_errors=True)
    assert_error(response, 416, "UNSUPPORTED")
    settle(mirrors)
    assert storage.size(f"blobs/sha256/{digest[7:9]}/{digest[7:]}") == len(data)
