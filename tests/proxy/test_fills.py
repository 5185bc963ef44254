"""Blob fills under chosen interleavings: the upstream held before or inside its answer, clients
that leave or stall, concurrent pulls, and a second process over the same storage.

Every interleaving is set up with events (the upstream's :class:`~.upstreams.Hold`, a counted
subscription, an injected ``sleep``), never with timing. Spec: OCI distribution spec "Pulling
blobs" (the body is the blob whose digest is in the URL).
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from werkzeug.test import EnvironBuilder

from docker_registry_wsgi import Registry
from docker_registry_wsgi.digests import parse_digest
from docker_registry_wsgi.proxy import Mirror, Mirrors
from docker_registry_wsgi.proxy import fills as fills_module
from docker_registry_wsgi.proxy.fills import StreamCut
from docker_registry_wsgi.proxy.flights import LEASE_TTL, FillLease, lease_key
from docker_registry_wsgi.storage import KeyNotFound, Storage
from tests.handlers import assert_error, sha256

from .conftest import settle
from .upstreams import WAIT, FakeClock, UpstreamSite

MiB = 1 << 20


class Streamed:
    """A ``GET`` through the cache's WSGI app, its body read only when the test says."""

    def __init__(self, app: Callable[..., Any], path: str, headers: dict[str, str] | None = None) -> None:
        environ = EnvironBuilder(path=path, method="GET", headers=headers or {}).get_environ()
        started: list[Any] = []
        body = app(environ, lambda status, headers, exc_info=None: started.append((status, headers)))
        status, header_list = started[0]
        self.status = int(status.split()[0])
        self.headers = dict(header_list)
        self._body: Iterator[bytes] = iter(body)
        self._close = getattr(body, "close", lambda: None)
        self.received = 0
        self.hasher = hashlib.sha256()

    def body(self) -> bytes:
        """The whole body (an error's)."""
        data = b"".join(self._body)
        self._close()
        return data

    def read(self, at_least: int) -> None:
        """Read pieces until ``at_least`` bytes in all have come."""
        while self.received < at_least:
            piece = next(self._body)
            self.received += len(piece)
            self.hasher.update(piece)

    def read_all(self) -> str:
        """Read to the end; the digest of everything received."""
        if self.status != 200:
            body = b"".join(self._body)
            self._close()
            raise AssertionError(f"{self.status}: {body[:500]!r}")
        for piece in self._body:
            self.received += len(piece)
            self.hasher.update(piece)
        self._close()
        return "sha256:" + self.hasher.hexdigest()

    def close(self) -> None:
        """What a server does when the client goes away mid-body."""
        self._close()


def blob_key(digest: str) -> str:
    return f"blobs/sha256/{digest[7:9]}/{digest[7:]}"


def stored(storage: Storage, digest: str) -> bool:
    try:
        storage.size(blob_key(digest))
    except KeyNotFound:
        return False
    return True


def payload(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest() * 32  # 1 KiB
    return (block * (size // len(block) + 1))[:size]


@pytest.fixture
def joined(monkeypatch: pytest.MonkeyPatch) -> Callable[[int], threading.Event]:
    """``joined(n)``: an event set once ``n`` requests have subscribed to fills."""
    counter = {"n": 0}
    events: list[tuple[int, threading.Event]] = []
    lock = threading.Lock()
    original = fills_module._Fill.subscribe

    def subscribe(self: Any) -> Any:
        reader = original(self)
        with lock:
            counter["n"] += 1
            for wanted, event in events:
                if counter["n"] >= wanted:
                    event.set()
        return reader

    monkeypatch.setattr(fills_module._Fill, "subscribe", subscribe)

    def expect(n: int) -> threading.Event:
        event = threading.Event()
        with lock:
            events.append((n, event))
            if counter["n"] >= n:
                event.set()
        return event

    return expect


def test_client_that_disconnects_mid_blob_does_not_abort_the_fill(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors, storage: Storage) -> None:
    data = payload(6 * MiB)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}", after=3 * MiB)
    response = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    assert response.status == 200 and response.headers["Content-Length"] == str(len(data))
    hold.wait_reached()
    response.read(1)
    response.close()  # the client left, with most of the blob still to come
    assert not stored(storage, digest)
    hold.release()
    settle(mirrors)
    assert stored(storage, digest)
    again = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    assert again.read_all() == digest
    assert upstream.count("GET", f"/blobs/{digest}") == 1
    assert list(storage.list("proxy/")) == []  # the fill's lease is gone


def test_corrupted_upstream_blob_is_refused_and_not_stored(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors, storage: Storage, tmp_path: Path) -> None:
    data = payload(3 * MiB + 5)
    digest = upstream.seed.push_blob("lib/app", data)
    on_disk = tmp_path / "upstream" / blob_key(digest)
    on_disk.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    response = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    assert response.status == 200
    with pytest.raises(StreamCut, match="do not match"):
        response.read_all()
    # The client never got a whole body: the last piece waits for the verification.
    assert response.received < len(data)
    settle(mirrors)
    assert not stored(storage, digest)
    assert list(storage.list(f"repositories/up/lib/app/_layers/")) == []
    assert list(storage.list_uploads()) == []
    # Nothing was cached: asked again, the cache asks the upstream again, and refuses again.
    with pytest.raises(StreamCut):
        Streamed(cache, f"/v2/up/lib/app/blobs/{digest}").read_all()
    assert upstream.count("GET", f"/blobs/{digest}") == 2
    on_disk.write_bytes(data)
    fixed = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    assert fixed.status == 200, fixed.read_all()
    assert fixed.read_all() == digest


def test_concurrent_pulls_of_an_uncached_blob_make_one_upstream_get(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors, storage: Storage,
        joined: Callable[[int], threading.Event]) -> None:
    clients = 32
    data = payload(16 * MiB, seed=2)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}")
    all_joined = joined(clients)
    results: list[str] = []
    lock = threading.Lock()

    def pull() -> None:
        got = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}").read_all()
        with lock:
            results.append(got)

    threads = [threading.Thread(target=pull) for _ in range(clients)]
    for thread in threads:
        thread.start()
    hold.wait_reached()
    assert all_joined.wait(WAIT)
    hold.release()
    for thread in threads:
        thread.join(WAIT)
    assert results == [digest] * clients
    assert upstream.count("GET", f"/blobs/{digest}") == 1
    settle(mirrors)
    assert stored(storage, digest)


def test_late_request_waits_for_the_fill_and_reads_the_stored_blob(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors) -> None:
    data = payload(4 * MiB, seed=3)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}", after=2 * MiB + 1)
    first = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    hold.wait_reached()
    first.read(1)  # the fill has handed out its first piece: too late to join it live
    late: list[str] = []
    thread = threading.Thread(target=lambda: late.append(Streamed(cache, f"/v2/up/lib/app/blobs/{digest}").read_all()))
    thread.start()
    hold.release()
    assert first.read_all() == digest
    thread.join(WAIT)
    assert late == [digest]
    assert upstream.count("GET", f"/blobs/{digest}") == 1


def _second_process(storage: Storage, upstream: UpstreamSite, clock: FakeClock,
                    sleep: Callable[[float], None], **mirror: Any) -> tuple[Registry, Mirrors]:
    """Another registry process over the same storage: its own mirrors, fills and leases."""
    mirrors = Mirrors([Mirror("up", upstream.url, **mirror)], clock=clock, sleep=sleep)
    return Registry(storage, mirrors=mirrors), mirrors


def test_second_process_waits_for_the_first_ones_fill(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors, storage: Storage, clock: FakeClock) -> None:
    data = payload(3 * MiB, seed=4)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}")
    waiting, go_on = threading.Event(), threading.Event()

    def sleep(seconds: float) -> None:
        waiting.set()
        assert go_on.wait(WAIT)

    other, other_mirrors = _second_process(storage, upstream, clock, sleep)
    first: list[str] = []
    thread = threading.Thread(target=lambda: first.append(Streamed(cache, f"/v2/up/lib/app/blobs/{digest}").read_all()))
    thread.start()
    hold.wait_reached()  # the first process holds the lease and is fetching
    second: list[str] = []
    thread2 = threading.Thread(target=lambda: second.append(Streamed(other, f"/v2/up/lib/app/blobs/{digest}").read_all()))
    thread2.start()
    assert waiting.wait(WAIT)  # the second found the lease held and waits
    hold.release()
    thread.join(WAIT)
    go_on.set()
    thread2.join(WAIT)
    assert first == second == [digest]
    assert upstream.count("GET", f"/blobs/{digest}") == 1
    assert upstream.count("HEAD", f"/blobs/{digest}") == 0  # the holder filled from the same repository
    settle(other_mirrors)


def test_lease_of_a_dead_process_is_taken_over_after_it_expires(
        upstream: UpstreamSite, storage: Storage, clock: FakeClock) -> None:
    data = payload(2 * MiB, seed=5)
    digest = upstream.seed.push_blob("lib/app", data)
    dead = FillLease(storage, parse_digest(digest), f"{upstream.url}/lib/app", clock=clock)
    assert dead.acquire()  # and then the process was killed: never renewed, never released
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(LEASE_TTL / 4)

    app, mirrors = _second_process(storage, upstream, clock, sleep, fill_wait=3600)
    assert Streamed(app, f"/v2/up/lib/app/blobs/{digest}").read_all() == digest
    settle(mirrors)
    assert sleeps and len(sleeps) <= 5
    assert stored(storage, digest)
    assert upstream.count("GET", f"/blobs/{digest}") == 1


def test_too_long_a_wait_streams_from_the_upstream_without_storing(
        upstream: UpstreamSite, storage: Storage, clock: FakeClock) -> None:
    data = payload(2 * MiB, seed=6)
    digest = upstream.seed.push_blob("lib/app", data)
    busy = FillLease(storage, parse_digest(digest), f"{upstream.url}/lib/app", clock=clock)
    assert busy.acquire()  # a live fill elsewhere, longer than we are willing to wait

    app, mirrors = _second_process(storage, upstream, clock, lambda s: clock.advance(4), fill_wait=10)
    assert Streamed(app, f"/v2/up/lib/app/blobs/{digest}").read_all() == digest
    settle(mirrors)
    assert not stored(storage, digest)
    assert storage.read_versioned(lease_key(parse_digest(digest)))  # theirs, untouched


def test_fills_beyond_the_limit_stream_without_storing(
        upstream: UpstreamSite, storage: Storage, clock: FakeClock) -> None:
    one, two = payload(3 * MiB, seed=7), payload(3 * MiB, seed=8)
    first, second = upstream.seed.push_blob("lib/app", one), upstream.seed.push_blob("lib/app", two)
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock, max_fills=1)
    app = Registry(storage, mirrors=mirrors)
    hold = upstream.hold("GET", f"/blobs/{first}", after=MiB)
    filling = Streamed(app, f"/v2/up/lib/app/blobs/{first}")
    hold.wait_reached()
    assert Streamed(app, f"/v2/up/lib/app/blobs/{second}").read_all() == second
    assert not stored(storage, second)
    hold.release()
    assert filling.read_all() == first
    settle(mirrors)
    assert stored(storage, first)


def test_unstored_stream_ends_when_its_client_leaves(upstream: UpstreamSite, storage: Storage,
                                                     clock: FakeClock) -> None:
    data = payload(8 * MiB, seed=9)
    digest = upstream.seed.push_blob("lib/app", data)
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock, max_fills=0)
    app = Registry(storage, mirrors=mirrors)
    response = Streamed(app, f"/v2/up/lib/app/blobs/{digest}")
    response.read(1)
    response.close()
    settle(mirrors)  # the stream's thread ended without reading the rest
    assert not stored(storage, digest)


def test_client_that_reads_nothing_is_dropped_and_the_fill_goes_on(
        upstream: UpstreamSite, storage: Storage, clock: FakeClock) -> None:
    """A subscriber with ``SUBSCRIBER_PIECES`` waiting, none taken within the stall timeout, is cut."""
    data = payload((fills_module.SUBSCRIBER_PIECES + 3) * MiB, seed=10)
    digest = upstream.seed.push_blob("lib/app", data)
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock, stall_timeout=0)
    app = Registry(storage, mirrors=mirrors)
    stalled = Streamed(app, f"/v2/up/lib/app/blobs/{digest}")
    settle(mirrors)
    assert stored(storage, digest)
    with pytest.raises(StreamCut, match="read nothing"):
        stalled.read_all()


def test_upstream_failing_mid_blob_cuts_the_response_and_stores_nothing(
        upstream: UpstreamSite, cache: Registry, mirrors: Mirrors, storage: Storage) -> None:
    data = payload(4 * MiB, seed=11)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}", after=2 * MiB + 7)
    response = Streamed(cache, f"/v2/up/lib/app/blobs/{digest}")
    hold.wait_reached()
    hold.abort()  # the upstream's connection drops mid-body
    with pytest.raises(StreamCut):
        response.read_all()
    settle(mirrors)
    assert not stored(storage, digest)
    assert list(storage.list_uploads()) == []


def test_waiters_share_the_fills_error(upstream: UpstreamSite, cache: Registry, mirrors: Mirrors,
                                       joined: Callable[[int], threading.Event]) -> None:
    missing = sha256(b"not upstream")
    hold = upstream.hold("GET", f"/blobs/{missing}")
    both = joined(2)
    statuses: list[tuple[int, str]] = []

    def pull() -> None:
        response = Streamed(cache, f"/v2/up/lib/app/blobs/{missing}")
        statuses.append((response.status, json.loads(response.body())["errors"][0]["code"]))

    threads = [threading.Thread(target=pull) for _ in range(2)]
    for thread in threads:
        thread.start()
    hold.wait_reached()
    assert both.wait(WAIT)
    hold.release()
    for thread in threads:
        thread.join(WAIT)
    assert statuses == [(404, "BLOB_UNKNOWN")] * 2
    assert upstream.count("GET", f"/blobs/{missing}") == 1


def test_full_storage_cuts_the_live_stream_and_answers_507_to_waiters(
        upstream: UpstreamSite, small_disk: Path, clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """A fill into a 2 MiB tmpfs: the live client is cut, a request waiting for the fill gets 507."""
    from docker_registry_wsgi.storage import FilesystemStorage

    storage = FilesystemStorage(small_disk / "registry")
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock)
    app = Registry(storage, mirrors=mirrors)
    data = payload(4 * MiB, seed=12)
    digest = upstream.seed.push_blob("lib/app", data)
    hold = upstream.hold("GET", f"/blobs/{digest}", after=MiB + 1)
    live = Streamed(app, f"/v2/up/lib/app/blobs/{digest}")
    hold.wait_reached()
    live.read(1)  # a piece is out: the next request waits for the fill's end
    late: list[tuple[int, str]] = []

    def wait() -> None:
        response = Streamed(app, f"/v2/up/lib/app/blobs/{digest}")
        late.append((response.status, json.loads(response.body())["errors"][0]["code"]))

    thread = threading.Thread(target=wait)
    thread.start()
    hold.release()
    with pytest.raises(StreamCut):
        live.read_all()
    thread.join(WAIT)
    settle(mirrors)
    assert late == [(507, "UNAVAILABLE")]
    assert not stored(storage, digest)
    assert "the storage is full" in caplog.text
