"""Keep each mirror within its size budget: the least recently pulled blobs go first.

A mirror's *usage* is the size of the distinct blobs linked into its repositories (layers and
configs; manifests are small and stay). When a mirror with a ``budget`` uses more than that,
:class:`Pruner` unlinks blobs from its repositories, the one pulled longest ago first (its usage
record, which every pull through the cache touches), until the mirror fits; bytes that no
other repository links are deleted at once. A cached manifest may then name a blob the cache no
longer holds: the next pull of it fetches it from the upstream again, as a first pull does.

Eviction is safe beside pulls and fills on any number of processes, for the reason garbage
collection is (docs/gc.rst): the pruner unlinks a digest only while holding its usage record,
taken by compare-and-swap from the version it read, and a pull touches the record before it
relies on the blob. It takes only digests untouched for ``min_idle`` (default twice the touch
interval, so that a record too fresh to be rewritten by a pull is never a candidate): content
pulled within that time stays even if the mirror is over its budget, which is a target, not a
hard limit.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

from ..content.paths import blob_key, layer_key, repo
from ..digests import parse_digest
from ..errors import RegistryError
from ..gc import AfterCollection, _digest_of_blob_key
from ..storage.base import Storage, StorageError, VersionConflict
from ..usage import Usage, UsageRecords
from .config import Mirror

__all__ = ["Pruner", "PruneReport", "pruning"]


@dataclass
class PruneReport:
    """What pruning one mirror found and did."""

    mirror: Mirror
    used_before: int = 0
    used_after: int = 0
    evicted: list[tuple[str, int]] = field(default_factory=list)  # (digest, size)
    bytes_deleted: int = 0
    spared_recent: int = 0
    errors: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def label(self) -> str:
        """What was done to which mirror, for the collector's error lines."""
        return f"pruning {self.mirror.label}"

    def summary(self) -> str:
        budget = self.mirror.budget or 0
        verb = "would evict" if self.dry_run else "evicted"
        return (f"prune {self.mirror.namespace or '(every name)'}: {self.used_before:,} of "
                f"{budget:,} bytes used; {verb} {len(self.evicted)} blobs "
                f"({sum(size for _, size in self.evicted):,} bytes, {self.bytes_deleted:,} deleted), "
                f"now {self.used_after:,}; {self.spared_recent} over budget but pulled recently"
                + (f"; {len(self.errors)} errors" if self.errors else ""))


@dataclass
class _Digest:
    size: int = 0
    links: list[str] = field(default_factory=list)  # repositories of the mirror linking it
    elsewhere: bool = False  # linked (as a layer or a revision) by a repository outside it


class Pruner:
    """Prune every mirror of ``mirrors`` that has a budget; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        mirrors: Sequence[Mirror],
        *,
        usage: UsageRecords | None = None,
        min_idle: float | None = None,
        dry_run: bool = False,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        self.storage = storage
        self.mirrors = list(mirrors)
        self.usage = usage if usage is not None else UsageRecords(storage, clock=clock)
        self.min_idle = 2 * self.usage.touch_interval if min_idle is None else min_idle
        self.dry_run = dry_run
        self.clock = clock
        self.log = logger or logging.getLogger("docker_registry_wsgi.proxy")
        self.run_id = "prune-" + secrets.token_hex(6)

    def owner(self, name: str) -> Mirror | None:
        """The mirror whose namespace holds repository ``name`` (the longest that matches)."""
        found: Mirror | None = None
        for mirror in self.mirrors:
            namespace = mirror.namespace
            if not namespace or name == namespace or name.startswith(namespace + "/"):
                if found is None or len(namespace) > len(found.namespace):
                    found = mirror
        return found

    def run(self) -> list[PruneReport]:
        """Prune each mirror with a budget; a report per such mirror."""
        budgeted = [m for m in self.mirrors if m.budget is not None]
        if not budgeted:
            return []
        repositories = sorted(k.replace("+", "/") for k in self.storage.list("catalog/"))
        listed = []
        for name in repositories:
            owner = self.owner(name)
            layers = {key.replace("/", ":", 1) for key in self.storage.list(f"{repo(name)}/_layers/")}
            revisions = {key.replace("/", ":", 1)
                         for key in self.storage.list(f"{repo(name)}/_manifests/revisions/")}
            listed.append((name, owner.namespace if owner is not None else None, layers, revisions))
        sizes = {d: size for key, size in self.storage.list_sizes("blobs/")
                 if (d := _digest_of_blob_key(key)) is not None}
        reports = []
        for mirror in budgeted:
            found: dict[str, _Digest] = defaultdict(_Digest)
            elsewhere: set[str] = set()
            for name, namespace, layers, revisions in listed:
                if namespace == mirror.namespace:
                    for digest in layers:
                        found[digest].links.append(name)
                    elsewhere |= revisions  # a manifest's bytes are never evicted
                else:
                    elsewhere |= layers | revisions
            for digest, info in found.items():
                info.elsewhere = digest in elsewhere
            reports.append(self._prune(mirror, found, sizes))
        return reports

    def _prune(self, mirror: Mirror, found: dict[str, _Digest], sizes: dict[str, int]) -> PruneReport:
        report = PruneReport(mirror, dry_run=self.dry_run)
        for digest, info in found.items():
            info.size = sizes.get(digest, 0)
        used = sum(info.size for info in found.values() if info.links)
        report.used_before = used
        assert mirror.budget is not None
        now = self.clock()
        candidates = []
        for digest, info in found.items():
            if not info.links or not info.size:
                continue
            record, version = self.usage.read(digest)
            touched = record.touched if record is not None else 0.0
            candidates.append((touched, digest, info, record, version))
        candidates.sort(key=lambda c: (c[0], c[1]))
        for touched, digest, info, record, version in candidates:
            if used <= mirror.budget:
                break
            if now - touched < self.min_idle or (record is not None and record.sweep is not None):
                report.spared_recent += 1
                continue
            if self._evict(digest, info, record, version, report):
                used -= info.size
        report.used_after = used
        if report.evicted:
            self.log.info("%s", report.summary())
        return report

    def _evict(self, digest: str, info: _Digest, record: Usage | None, version: str | None,
               report: PruneReport) -> bool:
        """Unlink ``digest`` from the mirror (and delete its bytes if nothing else links it)."""
        if self.dry_run:
            report.evicted.append((digest, info.size))
            return True
        usage = record if record is not None else Usage(0.0)
        try:
            held = self.usage.begin_sweep(digest, version, usage, self.run_id)
        except VersionConflict:
            report.spared_recent += 1  # pulled between our read and our swap
            return False
        deleted = False
        try:
            parsed = parse_digest(digest)
            for name in info.links:
                self.storage.delete(layer_key(name, parsed))
            if not info.elsewhere:
                self.storage.delete(blob_key(parsed))
                report.bytes_deleted += info.size
                deleted = True
            report.evicted.append((digest, info.size))
            return True
        except (StorageError, OSError, RegistryError) as exc:
            report.errors.append(f"{digest}: {exc}")
            self.log.error("pruning %s failed: %s", digest, exc)
            return False
        finally:
            self.usage.end_sweep(digest, held, usage, gone=deleted)


def pruning(storage: Storage, mirrors: Sequence[Mirror]) -> AfterCollection | None:
    """The garbage collector's step that prunes ``mirrors`` with a budget, or ``None`` if none
    has one: ``Collector(..., after=[step])`` runs it under its usage records and dry run."""
    if not any(mirror.budget is not None for mirror in mirrors):
        return None

    def prune(usage: UsageRecords, *, dry_run: bool, clock: Callable[[], float]) -> list[PruneReport]:
        return Pruner(storage, mirrors, usage=usage, dry_run=dry_run, clock=clock).run()

    return prune
