"""Garbage collection over real storage: what goes, what stays, and what it never touches.

Every test runs on memory, filesystem and S3 (a real SeaweedFS) storage. Time is a fake clock
shared by the registry's usage records and the collector, so "after the grace period" is exact
and instant.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

import pytest

from docker_registry_wsgi.content import RegistryContent
from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.errors import BlobUnknown, ManifestBlobUnknown, ManifestUnknown, Unavailable
from docker_registry_wsgi.gc import Collector
from docker_registry_wsgi.manifests import OCI_INDEX, OCI_MANIFEST
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage
from docker_registry_wsgi.usage import UsageRecords, record_key

GRACE = 3600.0
INTERVAL = 60.0
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class Clock:
    """Seconds since the epoch, moved by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Registry:
    """The content layer and a collector factory over one storage and one clock."""

    storage: Storage
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.usage = UsageRecords(self.storage, clock=self.clock, touch_interval=INTERVAL,
                                  sleep=lambda seconds: self.clock.advance(seconds))
        self.content = RegistryContent(self.storage, usage=self.usage)

    def collector(self, **options: Any) -> Collector:
        return Collector(self.storage, grace=GRACE, usage=self.usage, clock=self.clock, **options)

    def gc(self, **options: Any) -> Any:
        return self.collector(**options).run()

    def push_blob(self, name: str, data: bytes) -> Digest:
        digest = parse_digest("sha256:" + hashlib.sha256(data).hexdigest())
        self.content.push_blob(name, digest, [data], len(data))
        return digest

    def image(self, name: str, tag: str | None, *layers: bytes, config: bytes = b"{}",
              **extra: Any) -> tuple[Digest, bytes]:
        """Push the blobs, then a manifest naming them (tagged ``tag``, or by digest)."""
        descriptors = []
        for data, media_type in [(config, CONFIG), *((layer, LAYER) for layer in layers)]:
            digest = self.push_blob(name, data)
            descriptors.append({"mediaType": media_type, "digest": str(digest), "size": len(data)})
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0],
                           "layers": descriptors[1:], **extra}).encode()
        return self.put_manifest(name, tag, body, OCI_MANIFEST), body

    def put_manifest(self, name: str, tag: str | None, body: bytes, media_type: str) -> Digest:
        digest = parse_digest("sha256:" + hashlib.sha256(body).hexdigest())
        digest, _ = self.content.put_manifest(name, tag if tag else digest, body, media_type)
        return digest

    def blobs(self) -> dict[str, int]:
        """Every blob in the store with its size, from the store's own listing."""
        return {f"{k.split('/')[0]}:{k.split('/')[2]}": size
                for k, size in self.storage.list_sizes("blobs/")}

    def readable(self, name: str, reference: Any) -> bool:
        try:
            stored = self.content.get_manifest(name, reference)
        except ManifestUnknown:
            return False
        document = json.loads(stored.body or b"{}")
        for descriptor in [document.get("config"), *document.get("layers", ())]:
            if descriptor is None:
                continue
            digest = parse_digest(descriptor["digest"])
            reader = self.content.open_blob(name, digest)
            try:
                data = reader.read()
            finally:
                reader.close()
            assert hashlib.sha256(data).hexdigest() == digest.hex
        for child in document.get("manifests", ()):
            assert self.readable(name, parse_digest(child["digest"]))
        return True


@pytest.fixture(params=["memory", "filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def registry(request: pytest.FixtureRequest, tmp_path: Any) -> Registry:
    """The registry over each backend; S3 on a fresh prefix of the session's SeaweedFS bucket."""
    if request.param == "memory":
        return Registry(MemoryStorage())
    if request.param == "filesystem":
        return Registry(FilesystemStorage(tmp_path / "registry", fsync=False))
    from docker_registry_wsgi.storage.s3 import S3Storage

    bucket = request.getfixturevalue("s3_bucket")
    return Registry(S3Storage(bucket.name, "gc-" + os.urandom(6).hex(), endpoint_url=bucket.endpoint_url,
                              region=bucket.region, access_key=bucket.access_key,
                              secret_key=bucket.secret_key, client=bucket.shared_client))


def test_freed_bytes_are_exactly_what_only_the_deleted_images_held(registry: Registry) -> None:
    """Issue "Measured": delete half of the images; the bytes freed equal the bytes only those
    images held, checked against the store's own listing."""
    shared = os.urandom(3000)
    kept = [registry.image("team/a", f"v{i}", shared, os.urandom(1000 + i), config=b'{"i": %d}' % i)
            for i in range(4)]
    doomed = [registry.image("team/b", f"v{i}", shared, os.urandom(2000 + i), config=b'{"j": %d}' % i)
              for i in range(4)]
    before = registry.blobs()
    for digest, _ in doomed:
        registry.content.delete_manifest("team/b", digest)
    shared_digest = "sha256:" + hashlib.sha256(shared).hexdigest()
    only_doomed = {str(d): len(body) for d, body in doomed}
    for _, body in doomed:
        document = json.loads(body)
        for descriptor in [document["config"], *document["layers"]]:
            if descriptor["digest"] != shared_digest:
                only_doomed[descriptor["digest"]] = descriptor["size"]
    registry.clock.advance(GRACE + 1)
    report = registry.gc()
    after = registry.blobs()
    assert set(before) - set(after) == set(only_doomed)
    assert sum(before.values()) - sum(after.values()) == sum(only_doomed.values()) == report.bytes_freed
    assert report.blobs_freed == len(only_doomed)
    for i, (digest, _) in enumerate(kept):
        assert registry.readable("team/a", f"v{i}") and registry.readable("team/a", digest)
    assert "team/b" not in registry.content.repositories(None, None).items
    for digest in only_doomed:
        usage, _ = registry.usage.read(digest)
        assert usage is None, "the record of a collected digest stays behind"


def test_nothing_touched_within_the_grace_period_goes(registry: Registry) -> None:
    digest, _ = registry.image("team/a", "v1", b"layer")
    registry.content.delete_manifest("team/a", digest)
    orphan = registry.push_blob("team/a", b"uploaded, manifest not pushed yet")
    registry.clock.advance(GRACE - 1)
    before = registry.blobs()
    report = registry.gc()
    assert registry.blobs() == before and report.blobs_freed == 0
    assert report.spared_recent > 0
    assert registry.content.stat_blob("team/a", orphan) > 0


def test_head_confirms_a_blob_for_the_grace_period(registry: Registry) -> None:
    """A client that HEADs an old blob and skips uploading it pushes its manifest later."""
    old = registry.push_blob("team/a", b"an old layer nobody refers to")
    registry.clock.advance(10 * GRACE)
    assert registry.content.stat_blob("team/a", old, touch=True)  # the HEAD
    registry.clock.advance(GRACE - 2 * INTERVAL)
    registry.gc()
    config = registry.push_blob("team/a", b"{}")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CONFIG, "digest": str(config), "size": 2},
                       "layers": [{"mediaType": LAYER, "digest": str(old), "size": 29}]}).encode()
    registry.put_manifest("team/a", "v1", body, OCI_MANIFEST)
    assert registry.readable("team/a", "v1")


def test_a_blob_untouched_for_the_grace_period_goes_and_a_late_manifest_is_refused(registry: Registry) -> None:
    old = registry.push_blob("team/a", b"an old layer nobody refers to")
    registry.clock.advance(GRACE + 1)
    assert registry.gc().blobs_freed == 1
    with pytest.raises(BlobUnknown):
        registry.content.stat_blob("team/a", old)
    config = registry.push_blob("team/a", b"{}")
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CONFIG, "digest": str(config), "size": 2},
                       "layers": [{"mediaType": LAYER, "digest": str(old), "size": 29}]}).encode()
    with pytest.raises(ManifestBlobUnknown):
        registry.put_manifest("team/a", "v1", body, OCI_MANIFEST)


def test_dry_run_reports_and_changes_nothing(registry: Registry) -> None:
    digest, _ = registry.image("team/a", "v1", b"layer one")
    registry.content.delete_manifest("team/a", digest)
    registry.clock.advance(GRACE + 1)
    before = {key: registry.storage.read(key) for key in registry.storage.list("")}
    dry = registry.gc(dry_run=True)
    assert {key: registry.storage.read(key) for key in registry.storage.list("")} == before
    real = registry.gc()
    assert (dry.blobs_freed, dry.bytes_freed) == (real.blobs_freed, real.bytes_freed) == (3, dry.bytes_freed)
    assert sorted(map(str, dry.removals)) == sorted(map(str, real.removals))


def test_untagged_manifests_go_only_when_asked(registry: Registry) -> None:
    first, _ = registry.image("team/a", "latest", b"first layer")
    second, _ = registry.image("team/a", "latest", b"second layer")  # the tag moves
    registry.clock.advance(GRACE + 1)
    assert registry.gc().count("manifest") == 0
    assert registry.readable("team/a", first)
    report = registry.gc(delete_untagged=True)
    assert report.count("manifest") == 1
    assert not registry.readable("team/a", first)
    assert registry.readable("team/a", "latest") and registry.readable("team/a", second)
    registry.gc(delete_untagged=True)  # the first image's layer goes in the same or next run
    assert str(parse_digest("sha256:" + hashlib.sha256(b"first layer").hexdigest())) not in registry.blobs()


def test_index_children_and_referrers_of_what_is_tagged_stay(registry: Registry) -> None:
    amd64, amd_body = registry.image("team/a", None, b"amd64 layer")
    arm64, arm_body = registry.image("team/a", None, b"arm64 layer")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": str(d), "size": len(b)}
        for d, b in ((amd64, amd_body), (arm64, arm_body))]}).encode()
    index_digest = registry.put_manifest("team/a", "v1", index, OCI_INDEX)
    signature, _ = registry.image("team/a", None, b"signature", subject={
        "mediaType": OCI_INDEX, "digest": str(index_digest), "size": len(index)})
    orphan_signature, _ = registry.image("team/a", None, b"orphan signature", subject={
        "mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 1})
    registry.clock.advance(GRACE + 1)
    report = registry.gc(delete_untagged=True)
    for digest in (index_digest, amd64, arm64, signature):
        assert registry.readable("team/a", digest), digest
    assert not registry.readable("team/a", orphan_signature)
    assert [str(removal.digest) for removal in report.removals if removal.kind == "manifest"] == [str(orphan_signature)]
    assert [d["digest"] for d in registry.content.referrers("team/a", index_digest, None)] == [str(signature)]


def test_untagging_an_index_takes_its_children_after_it(registry: Registry) -> None:
    child, child_body = registry.image("team/a", None, b"child layer")
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": str(child), "size": len(child_body)}]}).encode()
    registry.put_manifest("team/a", "v1", index, OCI_INDEX)
    registry.content.delete_manifest("team/a", "v1")
    registry.clock.advance(GRACE + 1)
    report = registry.gc(delete_untagged=True)
    removed = [str(r.digest) for r in report.removals if r.kind == "manifest"]
    assert len(removed) == 2 and removed[-1] == str(child), "the index goes before its child"


def test_a_recently_used_untagged_child_keeps_nothing_from_going_wrong(registry: Registry) -> None:
    """An untagged manifest HEADed within the grace period stays, and so do its blobs."""
    child, _ = registry.image("team/a", None, b"child layer")
    registry.clock.advance(GRACE + 1)
    registry.content.stat_manifest("team/a", child, touch=True)
    registry.gc(delete_untagged=True)
    assert registry.readable("team/a", child)


def test_blobs_from_before_usage_records_are_judged_from_their_first_sight(registry: Registry) -> None:
    orphan = registry.push_blob("team/a", b"pushed by an earlier version")
    registry.storage.delete(record_key(orphan))
    registry.clock.advance(10 * GRACE)
    assert registry.gc().blobs_freed == 0  # first seen now
    registry.clock.advance(GRACE + 1)
    assert registry.gc().blobs_freed == 1


def test_empty_repository_leaves_the_catalog_unless_a_push_came_back(registry: Registry) -> None:
    digest, _ = registry.image("team/gone", "v1", b"layer")
    registry.content.delete_manifest("team/gone", digest)
    registry.image("team/stays", "v1", b"other layer")
    registry.clock.advance(GRACE + 1)
    registry.gc()
    assert registry.content.repositories(None, None).items == ["team/stays"]


def test_a_sweep_held_by_another_collector_is_left_alone(registry: Registry) -> None:
    orphan = registry.push_blob("team/a", b"orphan")
    registry.clock.advance(GRACE + 1)
    usage, version = registry.usage.read(orphan)
    assert usage is not None
    registry.usage.begin_sweep(orphan, version, usage, "another-run")
    report = registry.gc()
    assert report.blobs_freed == 0 and report.spared_busy == 1
    registry.clock.advance(3600)  # the other collector died: its sweep lease ran out
    assert registry.gc().blobs_freed == 1


def test_retention_rules_delete_tags_and_then_what_only_they_kept(registry: Registry) -> None:
    """Issue "Retention policies": keep the last N tags by push time, keep matching tags, delete
    untagged manifests older than D; what a kept tag needs stays."""
    from docker_registry_wsgi.retention import RetentionPolicy

    policy = RetentionPolicy.from_mapping({"retention": [
        {"repositories": ["ci/*"], "keep_last": 1, "keep_tags": ["release-*"],
         "delete_untagged_after": "2h"}]})
    digests = {}
    for tag in ("release-1", "build-1", "build-2", "build-3"):
        digests[tag], _ = registry.image("ci/app", tag, f"layer of {tag}".encode())
        registry.clock.advance(10)
    other, _ = registry.image("team/app", "build-1", b"not governed")
    registry.clock.advance(GRACE + 1)
    dry = registry.gc(retention=policy, dry_run=True)
    assert [p.tags_to_delete for p in dry.plans if p.repository == "ci/app"] == [("build-2", "build-1")]
    report = registry.gc(retention=policy)
    assert sorted(registry.storage.list("repositories/ci/app/_manifests/tags/")) == ["build-3", "release-1"]
    assert report.count("tag") == 2
    # Untagged for less than two hours of grace-on-top: their manifests wait for the next run.
    assert registry.readable("ci/app", digests["build-1"])
    registry.clock.advance(2 * 3600 + 1)
    registry.gc(retention=policy)
    for tag in ("build-1", "build-2"):
        assert not registry.readable("ci/app", digests[tag])
    for tag in ("build-3", "release-1"):
        assert registry.readable("ci/app", tag) and registry.readable("ci/app", digests[tag])
    assert registry.readable("team/app", "build-1") and registry.readable("team/app", other)


def test_periodic_collection_runs_in_one_process_when_due(registry: Registry) -> None:
    """``serve --gc-interval``: every worker may start one; the lease holder runs when due."""
    from docker_registry_wsgi.gc import PeriodicCollector

    old = registry.push_blob("team/a", b"an orphan")
    registry.clock.advance(GRACE + 1)
    runs: list[str] = []

    def make(name: str) -> Any:
        def build() -> Collector:
            runs.append(name)
            return registry.collector()
        return build

    first = PeriodicCollector(registry.storage, 3600, make("first"))
    second = PeriodicCollector(registry.storage, 3600, make("second"))
    now = registry.clock()
    report = first.run_once(now)
    assert report is not None and report.blobs_freed == 1
    assert second.run_once(now) is None  # the first holds the lease
    first.lease.release(now)
    assert second.run_once(now + 60) is None  # not due: a run finished a minute ago
    assert runs == ["first"]
    with pytest.raises(BlobUnknown):
        registry.content.stat_blob("team/a", old)


class CountingStorage(MemoryStorage):
    """Memory storage that counts reads of usage records."""

    def __init__(self) -> None:
        super().__init__()
        self.record_reads = 0

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        if key.startswith("gc/digests/"):
            self.record_reads += 1
        return super().read_versioned(key)


def test_a_touch_within_the_interval_of_a_fresh_record_reads_nothing() -> None:
    """A HEAD that finds its record fresh costs no storage round trip the next time (the S3 GET
    per HEAD); past the interval the record is read and rewritten again."""
    storage = CountingStorage()
    clock = Clock()
    usage = UsageRecords(storage, clock=clock, touch_interval=INTERVAL)
    digest = "sha256:" + "a" * 64
    assert usage.touch(digest) is True and storage.record_reads == 1
    clock.advance(INTERVAL / 2)
    assert usage.touch(digest) is False and storage.record_reads == 1
    clock.advance(INTERVAL / 2)
    assert usage.touch(digest) is True and storage.record_reads == 2
    written, _ = usage.read(digest)
    assert written is not None and written.touched == clock.now
    # A second instance (another process) knows nothing of it: it reads, finds it fresh, remembers.
    other = UsageRecords(storage, clock=clock, touch_interval=INTERVAL)
    assert other.touch(digest) is False and storage.record_reads == 4
    assert other.touch(digest) is False and storage.record_reads == 4


def test_a_remembered_record_is_forgotten_when_a_sweep_takes_it() -> None:
    """A collector sharing the records object takes a stale record: a touch then reads it and
    waits for the sweep rather than trusting what it remembered."""
    storage = CountingStorage()
    clock = Clock()
    usage = UsageRecords(storage, clock=clock, touch_interval=INTERVAL, sweep_wait=1.0,
                         sleep=clock.advance)
    digest = "sha256:" + "b" * 64
    usage.touch(digest)
    old, version = usage.read(digest)
    assert old is not None
    usage.begin_sweep(digest, version, old, "run-1")  # (a collector checks staleness first)
    with pytest.raises(Unavailable, match="garbage collected"):
        usage.touch(digest)
