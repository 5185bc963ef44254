"""A collector and a request on one digest, each held at a chosen point (no sleeps, no luck).

The collector runs on a thread whose storage stops before a chosen call until released; the
request runs on the test's thread (or its own, when it must be seen waiting). Each test names
the interleaving it reaches and checks the outcome docs/gc.rst promises for it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Callable

import pytest

from docker_registry_wsgi.digests import Digest, parse_digest
from docker_registry_wsgi.errors import BlobUnknown, ManifestBlobUnknown, Unavailable
from docker_registry_wsgi.gc import Collector, GCReport
from docker_registry_wsgi.manifests import OCI_MANIFEST
from docker_registry_wsgi.storage import Storage
from docker_registry_wsgi.usage import UsageRecords, record_key
from tests.test_gc import CONFIG, GRACE, INTERVAL, LAYER, Registry


class HeldAt:
    """A storage that stops its owner thread before the first ``method`` call on ``key``."""

    def __init__(self, inner: Storage, method: str, key: str) -> None:
        self.inner, self.method, self.key = inner, method, key
        self.owner: threading.Thread | None = None
        self.reached, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != self.method:
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            if (threading.current_thread() is self.owner and args and args[0] == self.key
                    and not self.reached.is_set()):
                self.reached.set()
                assert self.released.wait(30), "never released"
            return attribute(*args, **kwargs)

        return call


def collect_held(registry: Registry, method: str, key: str) -> tuple[HeldAt, threading.Thread, list[GCReport]]:
    """Start a collector (grace long past) that stops before ``method`` on ``key``."""
    held = HeldAt(registry.storage, method, key)
    usage = UsageRecords(held, clock=registry.clock, touch_interval=INTERVAL)  # type: ignore[arg-type]
    collector = Collector(held, grace=GRACE, usage=usage, clock=registry.clock)  # type: ignore[arg-type]
    reports: list[GCReport] = []
    thread = threading.Thread(target=lambda: reports.append(collector.run()), daemon=True)
    held.owner = thread
    thread.start()
    assert held.reached.wait(30), f"the collector never came to {method} {key}"
    return held, thread, reports


def sha(data: bytes) -> Digest:
    return parse_digest("sha256:" + hashlib.sha256(data).hexdigest())


@pytest.fixture
def registry(storage: Storage) -> Registry:
    return Registry(storage)


def old_orphan(registry: Registry, data: bytes = b"an old layer nobody refers to") -> Digest:
    digest = registry.push_blob("team/a", data)
    registry.clock.advance(GRACE + INTERVAL + 1)
    return digest


def test_touch_between_the_collectors_read_and_swap_spares_the_blob(registry: Registry) -> None:
    """The collector read the record stale; a HEAD touches it; the collector's swap fails."""
    digest = old_orphan(registry)
    held, thread, reports = collect_held(registry, "swap", record_key(digest))
    assert registry.content.stat_blob("team/a", digest, touch=True)  # the HEAD
    held.released.set()
    thread.join(30)
    assert reports[0].blobs_freed == 0 and reports[0].spared_recent >= 1
    assert registry.content.stat_blob("team/a", digest)


def test_touch_during_a_sweep_waits_and_sees_the_blob_gone(registry: Registry) -> None:
    """The collector holds the record and is about to delete; a HEAD waits for the sweep to
    end, then answers 404 (the client uploads again) rather than 200 for bytes about to go."""
    digest = old_orphan(registry)
    held, thread, reports = collect_held(registry, "delete", f"repositories/team/a/_layers/sha256/{digest.hex}")
    waiting = threading.Event()
    registry.usage.sleep = lambda seconds: (waiting.set(), threading.Event().wait(0.005))  # type: ignore[assignment,func-returns-value]
    outcome: list[BaseException | int] = []

    def head() -> None:
        try:
            outcome.append(registry.content.stat_blob("team/a", digest, touch=True))
        except BlobUnknown as exc:
            outcome.append(exc)

    request = threading.Thread(target=head)
    request.start()
    assert waiting.wait(30), "the HEAD did not wait for the sweep"
    held.released.set()
    thread.join(30)
    request.join(30)
    assert reports[0].blobs_freed == 1
    assert len(outcome) == 1 and isinstance(outcome[0], BlobUnknown)


def test_upload_during_a_sweep_waits_and_creates_the_blob_afresh(registry: Registry) -> None:
    """A client uploads the very bytes being collected: its commit waits, then stores them."""
    data = b"an old layer nobody refers to"
    digest = old_orphan(registry, data)
    held, thread, reports = collect_held(registry, "delete", f"repositories/team/a/_layers/sha256/{digest.hex}")
    waiting = threading.Event()
    registry.usage.sleep = lambda seconds: (waiting.set(), threading.Event().wait(0.005))  # type: ignore[assignment,func-returns-value]
    upload = threading.Thread(target=lambda: registry.push_blob("team/b", data))
    upload.start()
    assert waiting.wait(30), "the commit did not wait for the sweep"
    held.released.set()
    thread.join(30)
    upload.join(30)
    assert reports[0].blobs_freed == 1
    reader = registry.content.open_blob("team/b", digest)
    try:
        assert reader.read() == data
    finally:
        reader.close()


def test_manifest_put_during_a_sweep_is_refused_whole(registry: Registry) -> None:
    """A manifest naming a blob being collected: it waits, finds the link gone, and is refused
    with MANIFEST_BLOB_UNKNOWN; nothing half stored."""
    layer = old_orphan(registry)
    config = registry.push_blob("team/a", b"{}")
    held, thread, reports = collect_held(registry, "delete", f"repositories/team/a/_layers/sha256/{layer.hex}")
    waiting = threading.Event()
    registry.usage.sleep = lambda seconds: (waiting.set(), threading.Event().wait(0.005))  # type: ignore[assignment,func-returns-value]
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                       "config": {"mediaType": CONFIG, "digest": str(config), "size": 2},
                       "layers": [{"mediaType": LAYER, "digest": str(layer), "size": 29}]}).encode()
    outcome: list[BaseException | Digest] = []

    def put() -> None:
        try:
            outcome.append(registry.put_manifest("team/a", "v1", body, OCI_MANIFEST))
        except ManifestBlobUnknown as exc:
            outcome.append(exc)

    request = threading.Thread(target=put)
    request.start()
    assert waiting.wait(30)
    held.released.set()
    thread.join(30)
    request.join(30)
    assert isinstance(outcome[0], ManifestBlobUnknown)
    assert list(registry.storage.list("repositories/team/a/_manifests/tags/")) == []


def test_a_sweep_that_outlives_its_lease_is_taken_back(registry: Registry) -> None:
    """A collector that died holding a record: after the lease, a touch takes the record back."""
    digest = old_orphan(registry)
    usage, version = registry.usage.read(digest)
    assert usage is not None
    registry.usage.begin_sweep(digest, version, usage, "a-collector-that-died")
    with pytest.raises(Unavailable) as error:  # within the lease: wait, then 503
        registry.content.stat_blob("team/a", digest, touch=True)
    assert error.value.status == 503
    registry.clock.advance(registry.usage.sweep_lease + 1)
    assert registry.content.stat_blob("team/a", digest, touch=True)
    usage, _ = registry.usage.read(digest)
    assert usage is not None and usage.sweep is None and usage.touched == registry.clock()
