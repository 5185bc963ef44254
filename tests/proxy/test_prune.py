"""Size budgets: the least recently pulled blobs of a mirror go first, shared bytes stay, recent
pulls are spared, and a pull that touches a blob while the pruner decides keeps it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.cli import main, parse
from docker_registry_wsgi.gc import PeriodicCollector
from docker_registry_wsgi.proxy import Mirror, Mirrors
from docker_registry_wsgi.proxy.prune import Pruner
from docker_registry_wsgi.server import build_app
from docker_registry_wsgi.storage import FilesystemStorage, KeyNotFound, Storage
from docker_registry_wsgi.usage import UsageRecords, record_key
from tests.handlers import RegistryClient

from .conftest import settle
from .upstreams import WAIT, FakeClock, UpstreamSite

INTERVAL = 60.0
KiB = 1024


@pytest.fixture
def usage(storage: Storage, clock: FakeClock) -> UsageRecords:
    return UsageRecords(storage, clock=clock, touch_interval=INTERVAL)


@pytest.fixture
def app(storage: Storage, mirrors: Mirrors, usage: UsageRecords) -> webtest.TestApp:
    return webtest.TestApp(Registry(storage, mirrors=mirrors, usage=usage))  # the test's clock


def pull(app: webtest.TestApp, mirrors: Mirrors, digest: str) -> bytes:
    body = app.get(f"/v2/up/lib/app/blobs/{digest}").body
    settle(mirrors)
    return body


def linked(storage: Storage, name: str, digest: str) -> bool:
    try:
        storage.size(f"repositories/{name}/_layers/sha256/{digest[7:]}")
    except KeyNotFound:
        return False
    return True


def has_bytes(storage: Storage, digest: str) -> bool:
    try:
        storage.size(f"blobs/sha256/{digest[7:9]}/{digest[7:]}")
    except KeyNotFound:
        return False
    return True


def four_blobs(upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors, clock: FakeClock) -> list[str]:
    """Four 10 KiB blobs pulled an hour apart, oldest first."""
    digests = []
    for n in range(4):
        digest = upstream.seed.push_blob("lib/app", bytes([n]) * 10 * KiB)
        pull(app, mirrors, digest)
        digests.append(digest)
        clock.advance(3600)
    return digests


def test_least_recently_pulled_go_first_until_the_mirror_fits(
        upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors, storage: Storage,
        clock: FakeClock, usage: UsageRecords) -> None:
    digests = four_blobs(upstream, app, mirrors, clock)
    pull(app, mirrors, digests[0])  # pulled again: now the most recent
    clock.advance(3600)
    mirror = Mirror("up", upstream.url, budget=25 * KiB)
    report, = Pruner(storage, [mirror], usage=usage, clock=clock).run()
    assert report.used_before == 40 * KiB and report.used_after == 20 * KiB
    assert [d for d, _ in report.evicted] == [digests[1], digests[2]]
    assert report.bytes_deleted == 20 * KiB
    for digest in (digests[1], digests[2]):
        assert not linked(storage, "up/lib/app", digest) and not has_bytes(storage, digest)
        with pytest.raises(KeyNotFound):
            storage.read(record_key(digest))
    for digest in (digests[0], digests[3]):
        assert linked(storage, "up/lib/app", digest) and has_bytes(storage, digest)
    # An evicted blob is fetched again on its next pull.
    before = upstream.count("GET", f"/blobs/{digests[1]}")
    assert pull(app, mirrors, digests[1]) == bytes([1]) * 10 * KiB
    assert upstream.count("GET", f"/blobs/{digests[1]}") == before + 1


def test_dry_run_changes_nothing(upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors,
                                 storage: Storage, clock: FakeClock, usage: UsageRecords) -> None:
    digests = four_blobs(upstream, app, mirrors, clock)
    report, = Pruner(storage, [Mirror("up", upstream.url, budget=15 * KiB)], usage=usage, clock=clock,
                     dry_run=True).run()
    assert [d for d, _ in report.evicted] == digests[:3]
    assert "would evict 3 blobs" in report.summary()
    assert all(linked(storage, "up/lib/app", d) and has_bytes(storage, d) for d in digests)


def test_recent_pulls_stay_over_budget(upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors,
                                       storage: Storage, clock: FakeClock, usage: UsageRecords) -> None:
    digests = four_blobs(upstream, app, mirrors, clock)
    pruner = Pruner(storage, [Mirror("up", upstream.url, budget=1)], usage=usage, clock=clock,
                    min_idle=2.5 * 3600)
    report, = pruner.run()
    # Pulled 4, 3, 2 and 1 hours ago: the last two are within min_idle.
    assert [d for d, _ in report.evicted] == digests[:2]
    assert report.spared_recent == 2 and report.used_after == 20 * KiB
    assert pruner.min_idle == 2.5 * 3600
    assert Pruner(storage, [], usage=usage).min_idle == 2 * INTERVAL


def test_bytes_shared_with_a_pushed_repository_stay(upstream: UpstreamSite, app: webtest.TestApp,
                                                    mirrors: Mirrors, storage: Storage, clock: FakeClock,
                                                    usage: UsageRecords) -> None:
    digest = upstream.seed.push_blob("lib/app", b"s" * 10 * KiB)
    pull(app, mirrors, digest)
    app.post(f"/v2/team/app/blobs/uploads/?mount={digest}&from=up/lib/app", status=201)
    clock.advance(3600)
    report, = Pruner(storage, [Mirror("up", upstream.url, budget=1)], usage=usage, clock=clock).run()
    assert [d for d, _ in report.evicted] == [digest] and report.bytes_deleted == 0
    assert not linked(storage, "up/lib/app", digest)
    assert app.get(f"/v2/team/app/blobs/{digest}").body == b"s" * 10 * KiB


def test_only_budgeted_mirrors_and_their_names_are_pruned(
        upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors, storage: Storage,
        clock: FakeClock, usage: UsageRecords) -> None:
    pushed = RegistryClient(app).push_blob("team/app", b"p" * 10 * KiB)
    digests = four_blobs(upstream, app, mirrors, clock)
    assert Pruner(storage, [Mirror("up", upstream.url)], usage=usage, clock=clock).run() == []
    report, = Pruner(storage, [Mirror("up", upstream.url, budget=1), Mirror("other", upstream.url)],
                     usage=usage, clock=clock).run()
    assert {d for d, _ in report.evicted} == set(digests)
    assert linked(storage, "team/app", pushed) and has_bytes(storage, pushed)
    nested = Pruner(storage, [Mirror("up/lib", upstream.url, budget=1), Mirror("up", upstream.url)],
                           usage=usage, clock=clock)
    assert nested.owner("up/lib/app").namespace == "up/lib"  # the longest namespace owns a name


class HeldSwap:
    """A storage whose owner thread stops before swapping ``key`` until released."""

    def __init__(self, inner: Storage, key: str) -> None:
        self.inner, self.key = inner, key
        self.owner: threading.Thread | None = None
        self.reached, self.released = threading.Event(), threading.Event()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name != "swap":
            return attribute

        def swap(key: str, *args: Any) -> Any:
            if threading.current_thread() is self.owner and key == self.key and not self.reached.is_set():
                self.reached.set()
                assert self.released.wait(WAIT)
            return attribute(key, *args)

        return swap


def test_pull_between_the_pruners_read_and_swap_keeps_the_blob(
        upstream: UpstreamSite, app: webtest.TestApp, mirrors: Mirrors, storage: Storage,
        clock: FakeClock, usage: UsageRecords) -> None:
    digest = upstream.seed.push_blob("lib/app", b"q" * 10 * KiB)
    pull(app, mirrors, digest)
    clock.advance(3600)
    held = HeldSwap(storage, record_key(digest))
    pruner = Pruner(held, [Mirror("up", upstream.url, budget=1)],  # type: ignore[arg-type]
                    usage=UsageRecords(held, clock=clock, touch_interval=INTERVAL), clock=clock)  # type: ignore[arg-type]
    reports: list[Any] = []
    thread = threading.Thread(target=lambda: reports.extend(pruner.run()))
    held.owner = thread
    thread.start()
    assert held.reached.wait(WAIT)  # the pruner read the record as stale and is about to take it
    assert pull(app, mirrors, digest) == b"q" * 10 * KiB  # a pull touches it meanwhile
    held.released.set()
    thread.join(WAIT)
    report, = reports
    assert report.evicted == [] and report.spared_recent == 1
    assert linked(storage, "up/lib/app", digest) and has_bytes(storage, digest)
    assert upstream.count("GET", f"/blobs/{digest}") == 1


# -- pruning as part of garbage collection: the gc command and serve's periodic collection ------


@pytest.fixture
def cached_image(upstream: UpstreamSite, clock: FakeClock, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """An image of four 10 KiB layers pulled through a filesystem cache whose clock is in 2023 (so
    every usage record is days old to the commands below), one layer an hour, oldest first; the
    cache's folder and the layers' digests."""
    layers = [bytes([n]) * 10 * KiB for n in range(4)]
    image = upstream.seed.push_image("lib/app", "v1", layers=layers)
    root = tmp_path / "cache"
    storage = FilesystemStorage(root)
    mirrors = Mirrors([Mirror("up", upstream.url)], clock=clock)
    cache = Registry(storage, mirrors=mirrors,
                     usage=UsageRecords(storage, clock=clock, touch_interval=INTERVAL))
    app = webtest.TestApp(cache)
    app.get("/v2/up/lib/app/manifests/v1", headers={"Accept": image.media_type})
    digests = [d for d in image.blobs if image.blobs[d] in layers]
    digests.sort(key=lambda d: layers.index(image.blobs[d]))
    for digest in digests:
        pull(app, mirrors, digest)
        clock.advance(3600)
    config = next(d for d in image.blobs if d not in digests)
    pull(app, mirrors, config)  # the most recent: the layers go first
    yield root, digests
    settle(mirrors)
    mirrors.close()


def test_gc_command_prunes_mirrors_to_their_budgets(
        upstream: UpstreamSite, cached_image: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]) -> None:
    """``gc --proxy up=URL,budget=25K``: the collection keeps the tagged image whole, then the
    mirror is pruned to 25 KiB, least recently pulled layers first; ``--dry-run`` only says so."""
    root, digests = cached_image
    storage = FilesystemStorage(root)
    argv = ["gc", "--root", str(root), "--quiet", "--proxy", f"up={upstream.url},budget=25K"]
    assert main([*argv, "--dry-run"], {}) == 0
    out = capsys.readouterr().out
    assert [line.split()[3] for line in out.splitlines() if line.startswith("would evict")] == digests[:2]
    assert "would evict 2 blobs (20,480 bytes" in out and "dry run: " in out
    assert all(linked(storage, "up/lib/app", d) and has_bytes(storage, d) for d in digests)
    assert main(argv, {}) == 0
    out = capsys.readouterr().out
    summary, = [line for line in out.splitlines() if line.startswith("gc: ")]
    assert "freed 0 (0 bytes)" in summary  # nothing was garbage: the pruning took the bytes
    assert "prune up: " in summary and "evicted 2 blobs (20,480 bytes, 20,480 deleted)" in summary
    for digest in digests[:2]:
        assert not linked(storage, "up/lib/app", digest) and not has_bytes(storage, digest)
    for digest in digests[2:]:
        assert linked(storage, "up/lib/app", digest) and has_bytes(storage, digest)
    assert main(argv, {}) == 0  # within its budget now: nothing more goes
    assert "evicted 0 blobs" in capsys.readouterr().out
    assert main(["gc", "--root", str(root), "--quiet", "--proxy", f"up={upstream.url}"], {}) == 0
    assert "prune" not in capsys.readouterr().out  # no budget, no pruning


def test_serves_periodic_collection_prunes_mirrors_to_their_budgets(
        upstream: UpstreamSite, cached_image: tuple[Path, list[str]]) -> None:
    """``serve --gc-interval H --proxy-budget SIZE``: the collector serve builds for its workers
    prunes each mirror too (run here once, as the worker that holds the lease would)."""
    root, digests = cached_image
    background: list[Any] = []
    build_app(parse(["serve", "--root", str(root), "--gc-interval", "1", "--proxy", f"up={upstream.url}",
                     "--proxy-budget", "15K"]), background)
    periodic, = [job for job in background if isinstance(job, PeriodicCollector)]
    report = periodic.run_once()
    assert report is not None and not report.errors
    prune, = report.prunes
    assert [d for d, _ in prune.evicted] == digests[:3]
    assert prune.used_before - prune.used_after == 30 * KiB
    assert "prune up: " in report.summary()
    storage = FilesystemStorage(root)
    assert [has_bytes(storage, d) for d in digests] == [False, False, False, True]
