"""Garbage collection interleaved with pushes, HEAD-then-skip, mounts, tag moves and deletes.

A hypothesis state machine drives the registry and a collector that runs one step at a time
(``Collector.steps()``: a repository, the mark, one digest's sweep), so any registry operation
can land between any two steps of a run. After every step: every manifest reachable by a tag or
a digest is complete and readable (its blobs linked and hashing to their digests, its children
readable). A push that finishes within the grace period (less the touch interval) must succeed;
one that takes longer may be refused (MANIFEST_BLOB_UNKNOWN), never half stored.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass
from typing import Iterator

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, precondition, rule

from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.errors import BlobUnknown, ManifestBlobUnknown, ManifestUnknown
from docker_registry_wsgi.manifests import OCI_INDEX, OCI_MANIFEST
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage
from tests.test_gc import CONFIG, GRACE, INTERVAL, LAYER, Registry

REPOSITORIES = ("team/a", "team/b")
BLOBS = tuple(f"layer {i} ".encode() * (i + 1) for i in range(5))
TAGS = ("latest", "v1", "v2")
#: Delays between steps: short ones, and ones that cross the touch interval and the grace.
DELAYS = (1.0, INTERVAL + 1, GRACE / 4, GRACE / 2, GRACE + 1)


def sha(data: bytes) -> Digest:
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


@dataclass
class Push:
    """A push in progress: its blobs are uploaded or confirmed by HEAD, the manifest comes later."""

    repository: str
    layers: tuple[bytes, ...]
    config: bytes
    started: float


class CollectingWhilePushing(RuleBasedStateMachine):
    pushes = Bundle("pushes")
    manifests = Bundle("manifests")

    def __init__(self) -> None:
        super().__init__()
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self.registry: Registry | None = None
        self.steps: Iterator[str] | None = None
        self.unlinked: dict[tuple[str, str], float] = {}  # (repository, digest) -> last deleted

    @initialize(backend=st.sampled_from(["memory", "filesystem"]))
    def start(self, backend: str) -> None:
        if backend == "memory":
            storage = MemoryStorage()
        else:
            self._folder = tempfile.TemporaryDirectory(prefix="drw-gc-")
            storage = FilesystemStorage(self._folder.name, fsync=False)
        self.registry = Registry(storage)

    def teardown(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()

    @property
    def r(self) -> Registry:
        assert self.registry is not None
        return self.registry

    # -- pushes -----------------------------------------------------------------------------

    @rule(target=pushes, repository=st.sampled_from(REPOSITORIES),
          layers=st.lists(st.sampled_from(BLOBS), min_size=1, max_size=3, unique=True),
          seed=st.integers(0, 3))
    def begin_push(self, repository: str, layers: list[bytes], seed: int) -> Push:
        """Upload each blob, or skip it when a HEAD says it is there (as docker does)."""
        config = b'{"seed": %d}' % seed
        for data in [config, *layers]:
            try:
                self.r.content.stat_blob(repository, sha(data), touch=True)
            except BlobUnknown:
                self.r.push_blob(repository, data)
        return Push(repository, tuple(layers), config, self.r.clock())

    @rule(target=manifests, push=pushes, tag=st.sampled_from((None,) + TAGS))
    def finish_push(self, push: Push, tag: str | None) -> tuple[str, Digest, bytes]:
        descriptors = [{"mediaType": CONFIG, "digest": str(sha(push.config)), "size": len(push.config)}]
        descriptors += [{"mediaType": LAYER, "digest": str(sha(d)), "size": len(d)} for d in push.layers]
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptors[0],
                           "layers": descriptors[1:]}).encode()
        # The assumption the collector rests on: the push ends within the grace period, and no
        # client deleted what it uses meanwhile.
        in_time = self.r.clock() - push.started < GRACE - INTERVAL and not any(
            self.unlinked.get((push.repository, str(sha(d))), -1.0) >= push.started
            for d in [push.config, *push.layers]
        )
        try:
            digest = self.r.put_manifest(push.repository, tag, body, OCI_MANIFEST)
        except ManifestBlobUnknown:
            assert not in_time, "a push within the grace period lost a blob it relied on"
            return (push.repository, sha(body), body)
        return (push.repository, digest, body)

    @rule(target=manifests, children=st.lists(manifests, min_size=1, max_size=2), tag=st.sampled_from(TAGS))
    def push_index(self, children: list[tuple[str, Digest, bytes]], tag: str) -> tuple[str, Digest, bytes]:
        repository = children[0][0]
        members = [c for c in children if c[0] == repository]
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": str(d), "size": len(b)} for _, d, b in members]}).encode()
        try:
            digest = self.r.put_manifest(repository, tag, body, OCI_INDEX)
        except ManifestBlobUnknown:
            digest = sha(body)  # a child was deleted or collected: refused whole
        return (repository, digest, body)

    @rule(manifest=manifests, tag=st.sampled_from(TAGS))
    def move_tag(self, manifest: tuple[str, Digest, bytes], tag: str) -> None:
        repository, _, body = manifest
        media_type = json.loads(body)["mediaType"]
        try:
            self.r.put_manifest(repository, tag, body, media_type)
        except ManifestBlobUnknown:
            pass  # its blobs or children are gone: a re-push would upload them again

    @rule(source=st.sampled_from(REPOSITORIES), target_repository=st.sampled_from(REPOSITORIES),
          data=st.sampled_from(BLOBS))
    def mount(self, source: str, target_repository: str, data: bytes) -> None:
        self.r.content.mount_blob(target_repository, sha(data), source)

    # -- deletes ----------------------------------------------------------------------------

    @rule(manifest=manifests)
    def delete_manifest(self, manifest: tuple[str, Digest, bytes]) -> None:
        """A client deletes a manifest no index of the repository lists (see delete_blob)."""
        if str(manifest[1]) in self._referenced(manifest[0]):
            return
        try:
            self.r.content.delete_manifest(manifest[0], manifest[1])
        except ManifestUnknown:
            pass

    @rule(repository=st.sampled_from(REPOSITORIES), tag=st.sampled_from(TAGS))
    def delete_tag(self, repository: str, tag: str) -> None:
        try:
            self.r.content.delete_manifest(repository, tag)
        except ManifestUnknown:
            pass

    @rule(repository=st.sampled_from(REPOSITORIES), data=st.sampled_from(BLOBS))
    def delete_blob(self, repository: str, data: bytes) -> None:
        """A client deletes a layer no manifest of the repository uses (deleting a used one
        breaks that manifest by the client's own hand, which is not the collector's to prevent)."""
        if str(sha(data)) in self._referenced(repository):
            return
        try:
            self.r.content.delete_blob(repository, sha(data))
            self.unlinked[(repository, str(sha(data)))] = self.r.clock()
        except BlobUnknown:
            pass

    # -- time and the collector -------------------------------------------------------------

    @rule(seconds=st.sampled_from(DELAYS))
    def wait(self, seconds: float) -> None:
        self.r.clock.advance(seconds)

    @precondition(lambda self: self.steps is None)
    @rule(delete_untagged=st.booleans())
    def start_collector(self, delete_untagged: bool) -> None:
        collector = self.r.collector(delete_untagged=delete_untagged)
        self.steps = collector.steps()
        self._collector = collector

    @precondition(lambda self: self.steps is not None)
    @rule(count=st.integers(1, 4))
    def collector_steps(self, count: int) -> None:
        assert self.steps is not None
        for _ in range(count):
            if next(self.steps, None) is None:
                assert not self._collector.report.errors, self._collector.report.errors
                self.steps = None
                return

    def _referenced(self, repository: str) -> set[str]:
        referenced: set[str] = set()
        prefix = f"repositories/{repository}/_manifests/revisions/"
        for key in list(self.r.storage.list(prefix)):
            try:
                body = self.r.content.get_manifest(repository, parse_digest(key.replace("/", ":", 1))).body
            except ManifestUnknown:
                continue
            document = json.loads(body or b"{}")
            descriptors = [document.get("config") or {}, *document.get("layers", ()), *document.get("manifests", ())]
            referenced.update(d["digest"] for d in descriptors if d)
        return referenced

    # -- the invariant ------------------------------------------------------------------------

    @invariant()
    def every_reachable_manifest_is_whole(self) -> None:
        if self.registry is None:
            return
        storage = self.r.storage
        for repository in REPOSITORIES:
            for tag in list(storage.list(f"repositories/{repository}/_manifests/tags/")):
                try:
                    self.r.content.stat_manifest(repository, tag)
                except ManifestUnknown:
                    raise AssertionError(f"tag {repository}:{tag} names a missing manifest") from None
                assert self.r.readable(repository, tag), (repository, tag)
            for key in list(storage.list(f"repositories/{repository}/_manifests/revisions/")):
                digest = parse_digest(key.replace("/", ":", 1))
                assert self.r.readable(repository, digest), (repository, digest)


CollectingWhilePushing.TestCase.settings = settings(
    max_examples=80, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCollectingWhilePushing = CollectingWhilePushing.TestCase
