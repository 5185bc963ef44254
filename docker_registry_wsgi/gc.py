"""Online garbage collection: reclaim what no manifest needs, while pushes and pulls go on.

A run has three phases, over the storage alone (no lock service, any number of registry
processes and hosts beside it):

1. **Tags and manifests.** Retention rules (:mod:`.retention`) may delete tags; with
   ``delete_untagged`` (or a rule's ``delete_untagged_after``) the manifests no tag reaches
   (through indexes, and referrers of what is kept) are deleted, parents before children.
2. **Mark and sweep.** Every manifest left in every repository is read; a repository's layer
   link that none of its manifests refers to goes, and a blob (or manifest's bytes) that no
   repository links at all goes with it.
3. **Repositories** with nothing left leave the catalog.
4. **After the collection**, steps given as ``after`` run under the same usage records: the
   pull-through cache's pruning of mirrors to their size budgets (:func:`.proxy.prune.pruning`),
   least recently pulled first.

Nothing is deleted from under a request. Every deletion of a digest's links or bytes happens
while the collector holds that digest's usage record (:mod:`.usage`), which it may take only
from a record untouched for ``grace`` seconds; requests touch a record before relying on its
digest. docs/gc.rst gives the argument and its one assumption: a push (from the first upload
or ``HEAD`` of a blob to the manifest naming it) ends within ``grace - touch_interval``.
"""

from __future__ import annotations

import json
import logging
import math
import secrets
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Protocol, Sequence

from .content.paths import (
    blob_key,
    catalog_key,
    layer_key,
    referrers_prefix,
    repo,
    revision_key,
    tags_prefix,
)
from .digests import Digest, parse_digest
from .errors import RegistryError
from .manifests import parse_manifest
from .storage.base import KeyNotFound, Storage, StorageError, VersionConflict
from .usage import RECORDS_PREFIX, UsageRecords

if TYPE_CHECKING:
    from .retention import RepositoryPlan, RetentionPolicy

__all__ = ["Collector", "GCReport", "Removal", "DEFAULT_GRACE", "AfterCollection", "StepReport"]


class StepReport(Protocol):
    """What a step run after the collection found and did (one per mirror pruned, say)."""

    errors: list[str]

    @property
    def label(self) -> str:
        """What the step did and to what, for error lines (``pruning hub``)."""

    def summary(self) -> str:
        """One clause of the collector's summary line."""


class AfterCollection(Protocol):
    """A step run once the collection is done, under the collector's usage records, dry run
    and clock; returns its reports. The proxy's pruning is one (:func:`.proxy.prune.pruning`):
    the collector knows nothing of what it prunes."""

    def __call__(self, usage: UsageRecords, *, dry_run: bool,
                 clock: Callable[[], float]) -> Sequence[StepReport]: ...

#: Default grace period: a push may take up to this long (less the touch interval).
DEFAULT_GRACE = 24 * 3600.0

Progress = Callable[[str, int, int, str], None]


@dataclass(frozen=True)
class Removal:
    """One thing a run removed (or, in a dry run, would remove), and why."""

    kind: str  # "tag", "manifest", "link", "blob", "repository"
    repository: str | None
    digest: str | None
    size: int = 0
    reason: str = ""

    def __str__(self) -> str:
        where = f" in {self.repository}" if self.repository else ""
        what = f" {self.digest}" if self.digest else ""
        size = f" ({self.size} bytes)" if self.size else ""
        return f"{self.kind}{what}{where}{size}: {self.reason}"


@dataclass
class GCReport:
    """What a run found, kept and removed."""

    dry_run: bool = False
    repositories: int = 0
    manifests_kept: int = 0
    blobs_kept: int = 0
    bytes_kept: int = 0
    blobs_freed: int = 0
    bytes_freed: int = 0
    spared_recent: int = 0
    spared_busy: int = 0
    seconds: float = 0.0
    removals: list[Removal] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: What the retention rules decided for each repository (to show in a dry run).
    plans: list["RepositoryPlan"] = field(default_factory=list)
    #: What the steps after the collection found and did (phase 4: pruning mirrors).
    prunes: list[StepReport] = field(default_factory=list)

    def count(self, kind: str) -> int:
        return sum(1 for removal in self.removals if removal.kind == kind)

    def summary(self) -> str:
        verb = "would free" if self.dry_run else "freed"
        return (
            f"{self.repositories} repositories; {self.manifests_kept} manifests kept, "
            f"{self.count('manifest')} removed, {self.count('tag')} tags removed; "
            f"{self.blobs_kept} blobs kept ({_size(self.bytes_kept)}), {verb} {self.blobs_freed} "
            f"({_size(self.bytes_freed)}); {self.count('link')} links and "
            f"{self.count('repository')} repositories removed; {self.spared_recent} spared as "
            f"recently used, {self.spared_busy} held by another collector; "
            + "".join(f"{prune.summary()}; " for prune in self.prunes)
            + f"{len(self.errors)} errors; {self.seconds:.1f} s"
        )


@dataclass(frozen=True)
class _Tag:
    """A tag as its object records it: the manifest it names and when it was pushed."""

    digest: str
    pushed: float


@dataclass
class _Plan:
    """What the sweep of one digest removes: links per repository, and maybe its bytes."""

    links: list[str] = field(default_factory=list)
    blob: int | None = None  # size of the bytes to delete, if they go


class Collector:
    """One garbage collection run over ``storage``; see the module docstring.

    ``grace`` (seconds) spares anything touched more recently; ``delete_untagged`` removes
    manifests no tag reaches after the same grace; ``retention`` adds per-repository rules;
    ``after`` are steps run once the collection is done (pruning mirrors); ``dry_run`` reports without
    changing anything; ``progress(phase, done, total, detail)`` is called as the run goes.
    """

    def __init__(
        self,
        storage: Storage,
        *,
        grace: float = DEFAULT_GRACE,
        delete_untagged: bool = False,
        retention: RetentionPolicy | None = None,
        after: Sequence[AfterCollection] = (),
        dry_run: bool = False,
        progress: Progress | None = None,
        usage: UsageRecords | None = None,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.storage = storage
        self.usage = usage if usage is not None else UsageRecords(storage, clock=clock)
        if grace <= self.usage.touch_interval:
            raise ValueError(
                f"the grace period ({grace:g} s) must be longer than the touch interval "
                f"({self.usage.touch_interval:g} s)"
            )
        self.grace = grace
        self.delete_untagged = delete_untagged
        self.retention = retention
        self.after = list(after)
        self.dry_run = dry_run
        self.progress = progress or (lambda phase, done, total, detail: None)
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        self.run_id = secrets.token_hex(8)

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> GCReport:
        """Collect, start to end; the report."""
        for _ in self.steps():
            pass
        return self.report

    def steps(self) -> Iterator[str]:
        """The run one step at a time (a repository, a digest swept), naming each step.

        Pushes and pulls may run between any two steps (and do, in the tests), as they may
        between any two storage calls when a collector runs beside the registry.
        """
        started = time.monotonic()
        self.now = self.clock()
        self.report = report = GCReport(dry_run=self.dry_run)
        self._read: dict[str, _References | None] = {}
        repositories = sorted(k.replace("+", "/") for k in self.storage.list("catalog/"))
        report.repositories = len(repositories)
        gone: set[tuple[str, str]] = set()  # (repository, manifest digest) removed in phase 1
        for done, name in enumerate(repositories, 1):
            self._tags_and_manifests(name, report, gone)
            self.progress("manifests", done, len(repositories), name)
            yield f"manifests of {name}"
        marked, plans = self._mark(repositories, report, gone)
        yield "marked"
        for done, (digest, plan) in enumerate(sorted(plans.items()), 1):
            self._sweep(digest, plan, report)
            self.progress("sweep", done, len(plans), digest)
            yield f"swept {digest}"
        self._forget_records(marked, report)
        yield "records"
        unlinked = {(r.repository, r.digest) for r in report.removals if r.kind == "link"}
        for name in repositories:
            self._drop_if_empty(name, report, gone, unlinked)
            yield f"checked {name}"
        for step in self.after:
            self._after(step, report)
            yield "after"
        report.seconds = time.monotonic() - started

    def _after(self, step: AfterCollection, report: GCReport) -> None:
        """Phase 4: a step after the collection; its errors are the run's."""
        done = list(step(self.usage, dry_run=self.dry_run, clock=self.clock))
        report.prunes += done
        for result in done:
            report.errors += [f"{result.label}: {error}" for error in result.errors]
        self.progress("after", len(done), len(done), "steps")

    # -- phase 1: tags and untagged manifests --------------------------------------------------

    def _tags_and_manifests(self, name: str, report: GCReport, gone: set[tuple[str, str]]) -> None:
        tags = self._read_tags(name)
        untagged_after = self.grace if self.delete_untagged else None
        if self.retention is not None:
            from .retention import TagInfo

            plan = self.retention.plan(
                name, {t: TagInfo(digest=i.digest, pushed=i.pushed) for t, i in tags.items()}
            )
            report.plans.append(plan)
            for decision in plan.delete:
                self._delete_tag(name, decision.tag, tags[decision.tag], decision.reason, report)
                del tags[decision.tag]
            if plan.untagged_after is not None:
                untagged_after = max(self.grace, plan.untagged_after)
        if untagged_after is None:
            return
        revisions = self._revisions(name)
        roots = {info.digest for info in tags.values()} & set(revisions)
        keepers: dict[str, set[str]] = defaultdict(set)  # digest -> what keeps it, if kept
        keeps: dict[str, set[str]] = defaultdict(set)  # digest -> what it keeps
        references = self._references(list(revisions), report)
        for digest, link in revisions.items():
            subject = link.get("subject")
            if isinstance(subject, str) and subject in revisions:
                keepers[digest].add(subject)
                keeps[subject].add(digest)
            found = references[digest]
            for child in found.children if found is not None else ():
                if child in revisions:
                    keepers[child].add(digest)
                    keeps[digest].add(child)
        # What a tag reaches, what was used recently, and everything those keep.
        fresh = {d for d in revisions if d not in roots and not self._stale(d, untagged_after)}
        kept = self._closure(roots | fresh, keeps)
        doomed = self._keepers_first(set(revisions) - kept, keepers)
        spared: set[str] = set()
        for digest in doomed:
            if keepers[digest] & (spared | kept):
                spared.add(digest)
                continue
            if self._remove_manifest(name, digest, revisions[digest], untagged_after, report):
                gone.add((name, digest))
            else:
                spared.add(digest)

    @staticmethod
    def _closure(roots: set[str], keeps: Mapping[str, set[str]]) -> set[str]:
        """``roots`` and every manifest one of them keeps (children of indexes, referrers)."""
        kept, frontier = set(roots), list(roots)
        while frontier:
            for digest in keeps.get(frontier.pop(), ()):
                if digest not in kept:
                    kept.add(digest)
                    frontier.append(digest)
        return kept

    @staticmethod
    def _keepers_first(doomed: set[str], keepers: Mapping[str, set[str]]) -> list[str]:
        """``doomed`` ordered so that whatever could keep a manifest comes before it."""
        ordered: list[str] = []
        placed: set[str] = set()

        def place(digest: str, path: frozenset[str]) -> None:
            if digest in placed or digest in path:
                return
            for keeper in sorted(keepers.get(digest, set()) & doomed):
                place(keeper, path | {digest})
            placed.add(digest)
            ordered.append(digest)

        for digest in sorted(doomed):
            place(digest, frozenset())
        return ordered

    def _remove_manifest(self, name: str, digest: str, link: Mapping[str, object],
                         untagged_after: float, report: GCReport) -> bool:
        """Delete an untagged manifest's revision (and referrers entry) under its record."""
        reason = f"untagged, unused for {_duration(untagged_after)}"

        def remove() -> None:
            parsed = parse_digest(digest)
            self.storage.delete(revision_key(name, parsed))
            self.storage.delete(layer_key(name, parsed))
            subject = link.get("subject")
            if isinstance(subject, str):
                self.storage.delete(referrers_prefix(name, parse_digest(subject)) + digest)

        size = link.get("size")
        removal = Removal("manifest", name, digest, size if isinstance(size, int) else 0, reason)
        return self._under_record(digest, untagged_after, remove, [removal], report, gone=False)

    # -- phase 2: mark and sweep ---------------------------------------------------------------

    def _mark(self, repositories: list[str], report: GCReport,
              gone: set[tuple[str, str]]) -> tuple[set[str], dict[str, _Plan]]:
        """Everything a manifest still refers to, and the plan for what nothing needs."""
        marked: set[str] = set()  # digests some manifest or revision of some repository needs
        linked: dict[str, int] = defaultdict(int)  # digest -> links to it, in all repositories
        plans: dict[str, _Plan] = defaultdict(_Plan)
        for done, name in enumerate(repositories, 1):
            revisions = [d for d in self._revision_names(name) if (name, d) not in gone]
            needed: set[str] = set(revisions)
            references = self._references(revisions, report)
            for digest in revisions:
                linked[digest] += 1
                refs = references[digest]
                if refs is not None:
                    needed.update(refs.blobs)
                    needed.update(refs.children)
            report.manifests_kept += len(revisions)
            for digest in self._layers(name):
                linked[digest] += 1
                if digest not in needed:
                    plans[digest].links.append(name)
            marked |= needed
            self.progress("mark", done, len(repositories), f"{name}: {len(marked)} digests in use")
        for key, size in self.storage.list_sizes("blobs/"):
            blob = _digest_of_blob_key(key)
            if blob is None:
                continue
            digest = blob
            planned = len(plans[digest].links) if digest in plans else 0
            if digest in marked or linked.get(digest, 0) > planned:
                report.blobs_kept += 1
                report.bytes_kept += size
            else:
                plans[digest].blob = size
        return marked, {d: p for d, p in plans.items() if p.links or p.blob is not None}

    def _sweep(self, digest: str, plan: _Plan, report: GCReport) -> None:
        removals = [Removal("link", name, digest, 0, "no manifest of the repository refers to it")
                    for name in plan.links]
        if plan.blob is not None:
            removals.append(Removal("blob", None, digest, plan.blob, "nothing links it"))

        def remove() -> None:
            parsed = parse_digest(digest)
            for name in plan.links:
                self.storage.delete(layer_key(name, parsed))
            if plan.blob is not None:
                self.storage.delete(blob_key(parsed))

        if self._under_record(digest, self.grace, remove, removals, report,
                              gone=plan.blob is not None) and plan.blob is not None:
            report.blobs_freed += 1
            report.bytes_freed += plan.blob
        elif plan.blob is not None:
            report.blobs_kept += 1
            report.bytes_kept += plan.blob

    def _forget_records(self, marked: set[str], report: GCReport) -> None:
        """Drop usage records of digests that no longer exist anywhere (untouched for the grace)."""
        for key in list(self.storage.list(RECORDS_PREFIX)):
            algorithm, _, hex_ = key.partition("/")
            digest = f"{algorithm}:{hex_}"
            if digest in marked:
                continue
            try:
                parsed = parse_digest(digest)
                self.storage.size(blob_key(parsed))
                continue
            except (RegistryError, KeyNotFound):
                pass
            usage, _ = self.usage.read(digest)
            if usage is not None and usage.sweep is None and self._old(usage.touched, self.grace):
                if not self.dry_run:
                    self.storage.delete(RECORDS_PREFIX + key)

    # -- phase 3: empty repositories -----------------------------------------------------------

    def _drop_if_empty(self, name: str, report: GCReport, gone: set[tuple[str, str]],
                       unlinked: set[tuple[str | None, str | None]]) -> None:
        if self._has_content(name, gone, unlinked):
            return
        report.removals.append(Removal("repository", name, None, 0, "nothing left in it"))
        if self.dry_run:
            return
        self.storage.delete(catalog_key(name))
        # A push that linked something meanwhile registered the name before or after our
        # delete: if after, it wrote the entry back; if before, we see its link now.
        if self._has_content(name, set(), set()):
            self.storage.write(catalog_key(name), b"")
            report.removals.pop()

    def _has_content(self, name: str, gone: set[tuple[str, str]],
                     unlinked: set[tuple[str | None, str | None]]) -> bool:
        if next(iter(self.storage.list(tags_prefix(name))), None) is not None:
            return True
        revisions = self.storage.list(f"{repo(name)}/_manifests/revisions/")
        if any((name, key.replace("/", ":", 1)) not in gone for key in revisions):
            return True
        layers = self.storage.list(f"{repo(name)}/_layers/")
        return any((name, key.replace("/", ":", 1)) not in unlinked for key in layers)

    # -- under a digest's usage record ---------------------------------------------------------

    def _under_record(self, digest: str, grace: float, remove: Callable[[], None],
                      removals: list[Removal], report: GCReport, *, gone: bool) -> bool:
        """Run ``remove`` holding ``digest``'s record, if it was untouched for ``grace``."""
        usage, version = self.usage.read(digest)
        if usage is None:
            if not self.dry_run:
                self.usage.first_sight(digest, self.now)  # from before records: judge next run
            report.spared_recent += 1
            return False
        if usage.sweep is not None and not self._old(usage.since or 0.0, self.usage.sweep_lease):
            report.spared_busy += 1
            return False
        if not self._old(usage.touched, grace):
            report.spared_recent += 1
            return False
        if self.dry_run:
            report.removals.extend(removals)
            return True
        try:
            held = self.usage.begin_sweep(digest, version, usage, self.run_id)
        except VersionConflict:
            report.spared_recent += 1  # touched (or taken) between our read and our swap
            return False
        deleted = False
        try:
            remove()
            deleted = True
            report.removals.extend(removals)
        except (StorageError, OSError) as exc:
            report.errors.append(f"{digest}: {exc}")
            self.log.error("garbage collection of %s failed: %s", digest, exc)
        finally:
            self.usage.end_sweep(digest, held, usage, gone=deleted and gone)
        return deleted

    def _stale(self, digest: str, grace: float) -> bool:
        usage, _ = self.usage.read(digest)
        return usage is not None and usage.sweep is None and self._old(usage.touched, grace)

    def _old(self, when: float, age: float) -> bool:
        return when < self.now - age

    # -- reading the repositories --------------------------------------------------------------

    def _read_tags(self, name: str) -> dict[str, _Tag]:
        tags: dict[str, _Tag] = {}
        prefix = tags_prefix(name)
        for tag in list(self.storage.list(prefix)):
            try:
                doc = json.loads(self.storage.read(prefix + tag))
                digest = str(doc["digest"])
            except (KeyNotFound, ValueError, KeyError, TypeError):
                continue
            pushed = doc.get("pushed", 0.0)
            # A push time that is not a number counts as unknown: the oldest, as for old tags.
            ok = isinstance(pushed, (int, float)) and not isinstance(pushed, bool) and math.isfinite(pushed)
            tags[tag] = _Tag(digest, float(pushed) if ok else 0.0)
        return tags

    def _delete_tag(self, name: str, tag: str, info: _Tag, reason: str, report: GCReport) -> None:
        report.removals.append(Removal("tag", name, info.digest, 0, f"{tag}: {reason}"))
        if self.dry_run:
            return
        key = tags_prefix(name) + tag
        try:
            doc = json.loads(self.storage.read(key))
        except (KeyNotFound, ValueError):
            return
        if doc.get("digest") == info.digest and float(doc.get("pushed", 0.0)) == info.pushed:
            self.storage.delete(key)  # unless it was pushed again since we read it

    def _revisions(self, name: str) -> dict[str, dict[str, object]]:
        prefix = f"{repo(name)}/_manifests/revisions/"
        revisions: dict[str, dict[str, object]] = {}
        for key in list(self.storage.list(prefix)):
            algorithm, _, hex_ = key.partition("/")
            try:
                revisions[f"{algorithm}:{hex_}"] = json.loads(self.storage.read(prefix + key))
            except (KeyNotFound, ValueError):
                continue
        return revisions

    def _revision_names(self, name: str) -> list[str]:
        """The digests of a repository's manifests, from a listing alone."""
        return [sys.intern(key.replace("/", ":", 1))
                for key in self.storage.list(f"{repo(name)}/_manifests/revisions/")]

    def _layers(self, name: str) -> Iterable[str]:
        for key in self.storage.list(f"{repo(name)}/_layers/"):
            algorithm, _, hex_ = key.partition("/")
            yield f"{algorithm}:{hex_}"

    def _references(self, digests: list[str], report: GCReport) -> Mapping[str, _References | None]:
        """What each manifest refers to (``None``: unreadable), read once per run, in parallel.

        Only the referenced digests are kept (interned strings, shared with the mark set), not
        the parsed manifests: memory grows with digests, not with manifests' JSON.
        """
        missing = [d for d in dict.fromkeys(digests) if d not in self._read]
        if missing:
            with ThreadPoolExecutor(min(_READERS, len(missing))) as pool:
                for digest, found in zip(missing, pool.map(self._read_references, missing)):
                    if isinstance(found, str):
                        report.errors.append(found)
                        self._read[digest] = None
                    else:
                        self._read[digest] = found
        return self._read

    def _read_references(self, digest: str) -> _References | str:
        try:
            manifest = parse_manifest(self.storage.read(blob_key(parse_digest(digest))), None)
        except (KeyNotFound, RegistryError) as exc:
            return f"manifest {digest} cannot be read: {exc}"
        return _References(tuple(sys.intern(str(d.digest)) for d in manifest.blobs),
                           tuple(sys.intern(str(d.digest)) for d in manifest.children))


#: Manifests read at once (latency-bound stores such as S3 gain most).
_READERS = 8


@dataclass(frozen=True)
class _References:
    """What one manifest refers to: its blobs (config and layers) and its child manifests."""

    blobs: tuple[str, ...]
    children: tuple[str, ...]


def _digest_of_blob_key(key: str) -> str | None:
    """``sha256:<hex>`` for the key ``sha256/<hex[:2]>/<hex>`` below ``blobs/``."""
    parts = key.split("/")
    if len(parts) != 3:
        return None
    return f"{parts[0]}:{parts[2]}"


def _size(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if count < 1000 or unit == "GB":
            return f"{count:,} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000  # type: ignore[assignment]
    return f"{count} bytes"


def _duration(seconds: float) -> str:
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds / length:g}{unit}"
    return f"{seconds:g}s"


class PeriodicCollector:
    """Runs a collection every ``interval`` seconds in one of the processes that start it.

    Every registry process may start one (``serve --gc-interval``); they share the lease
    ``gc/lease`` (see :mod:`.leases`), and the process that holds it when a run is due runs
    it. ``make`` builds each run's :class:`Collector`. Two runs at once (a holder that stalled
    past its lease) are safe, only wasteful.
    """

    def __init__(self, storage: Storage, interval: float, make: Callable[[], Collector], *,
                 lease_ttl: float = 3600.0, logger: logging.Logger | None = None) -> None:
        from .leases import Lease

        self.storage, self.interval, self.make = storage, interval, make
        self.lease = Lease(storage, "gc/lease", secrets.token_hex(8), lease_ttl)
        self.log = logger or logging.getLogger(__name__)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: float | None = None) -> GCReport | None:
        """Collect if a run is due and this process holds the lease; the report, if it ran."""
        now = time.time() if now is None else now
        if not self._due(now) or not self.lease.hold(now):
            return None
        collector = self.make()
        # Renew the lease as the run goes (a long run must not lose it to another process).
        def renew(phase: str, done: int, total: int, detail: str) -> None:
            self.lease.hold(time.time())

        collector.progress = renew
        report = collector.run()
        self.storage.write("gc/last-run", json.dumps({"finished": time.time()}).encode())
        self.log.info("garbage collection: %s", report.summary())
        return report

    def _due(self, now: float) -> bool:
        try:
            finished = float(json.loads(self.storage.read("gc/last-run"))["finished"])
        except (KeyNotFound, ValueError, KeyError, TypeError):
            return True
        return now - finished >= self.interval

    def start(self) -> None:
        """Check every minute (or sooner for short intervals) on a daemon thread."""
        def loop() -> None:
            while not self._stop.wait(min(60.0, self.interval / 4)):
                try:
                    self.run_once()
                except Exception:  # a failed run is logged; the next one may succeed
                    self.log.exception("periodic garbage collection failed")

        self._thread = threading.Thread(target=loop, name="periodic-gc", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.lease.release(time.time())
