"""When each digest was last used: the records that keep online garbage collection safe.

Every blob and manifest has a small record, ``gc/digests/<alg>/<hex>``, saying when a request
last relied on it: an upload committed it, a mount or a link named it, a ``HEAD`` confirmed it,
a manifest referred to it. A request *touches* the record before it relies on the digest, and a
collector may delete a digest's links or bytes only while holding its record in the *sweeping*
state, which it takes with a compare-and-swap from a record it found stale (untouched for
longer than its grace period). The two exclude each other without any lock service:

* a touch that lands before the collector reads the record makes it fresh: nothing is swept;
* a touch between the collector's read and its swap changes the version: the swap fails;
* a touch that finds the record sweeping waits until the sweep ends, then sees what is left.

A touch writes only when the record is older than ``touch_interval``, so a digest used all day
costs one write an hour; a request that found the record fresh relies on it for at most
``grace - touch_interval`` (docs/gc.rst has the argument). Each :class:`UsageRecords` also
remembers the records it saw fresh, so a digest touched again within ``touch_interval`` of
what it saw costs no read: no collector can be sweeping a record that fresh (a sweep starts only
on one untouched for the whole grace, longer than ``touch_interval``), and only a sweep removes it.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass
from typing import Callable

from .digests import Digest
from .errors import Unavailable
from .storage.base import KeyNotFound, Storage, VersionConflict

__all__ = ["Usage", "UsageRecords", "RECORDS_PREFIX", "DEFAULT_TOUCH_INTERVAL", "SWEEP_LEASE"]

RECORDS_PREFIX = "gc/digests/"
#: A record touched less than this long ago is not rewritten by a touch.
DEFAULT_TOUCH_INTERVAL = 3600.0
#: A sweep older than this is taken to be a collector that died; touches take the record back.
SWEEP_LEASE = 600.0
#: How long a touch waits for a sweep of its digest to end before answering 503.
SWEEP_WAIT = 10.0
#: How many fresh records a :class:`UsageRecords` remembers before it forgets them all.
RECENT_LIMIT = 1 << 16


@dataclass(frozen=True)
class Usage:
    """A digest's record: last touched, and the collector run sweeping it (if any) since when."""

    touched: float
    sweep: str | None = None
    since: float | None = None

    def to_json(self) -> bytes:
        # The nonce gives every write its own version, so two equal records never look alike.
        return json.dumps({"touched": self.touched, "sweep": self.sweep, "since": self.since,
                           "nonce": secrets.token_hex(6)}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Usage":
        doc = json.loads(data)
        return cls(float(doc["touched"]), doc.get("sweep"), doc.get("since"))


def record_key(digest: Digest | str) -> str:
    algorithm, _, hex_ = str(digest).partition(":")
    return f"{RECORDS_PREFIX}{algorithm}/{hex_}"


class UsageRecords:
    """Reads, touches and sweeps usage records in a storage; see the module docstring."""

    def __init__(
        self,
        storage: Storage,
        *,
        touch_interval: float = DEFAULT_TOUCH_INTERVAL,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        sweep_wait: float = SWEEP_WAIT,
        sweep_lease: float = SWEEP_LEASE,
    ) -> None:
        self.storage = storage
        self.touch_interval = touch_interval
        self.clock = clock
        self.sleep = sleep
        self.sweep_wait = sweep_wait
        self.sweep_lease = sweep_lease
        #: record key -> the ``touched`` time of the record when last seen fresh or written.
        self._recent: dict[str, float] = {}

    def _seen_fresh(self, key: str, touched: float) -> None:
        if len(self._recent) >= RECENT_LIMIT:
            self._recent.clear()
        self._recent[key] = touched

    def read(self, digest: Digest | str) -> tuple[Usage | None, str | None]:
        """The record and its version; ``(None, None)`` when there is none (or it is unreadable)."""
        try:
            data, version = self.storage.read_versioned(record_key(digest))
        except KeyNotFound:
            return None, None
        try:
            return Usage.from_json(data), version
        except (ValueError, KeyError, TypeError):
            return Usage(0.0), version  # unreadable: as old as can be, and replaceable

    def touch(self, digest: Digest | str) -> bool:
        """Record that a request relies on ``digest`` now; wait out a sweep of it in progress.

        Returns whether anything may have changed since the caller last looked (the record was
        missing, stale or swept, so a collector may have run): the caller then checks again that
        what it relies on is there. ``False`` means the record was fresh and free, and is left
        as it is. Raises :class:`~.errors.Unavailable` (503) if a live sweep does not end in time.
        """
        key = record_key(digest)
        seen = self._recent.get(key)
        if seen is not None and self.clock() - seen < self.touch_interval:
            return False
        waited, pause = 0.0, 0.01
        while True:
            now = self.clock()
            usage, version = self.read(digest)
            if usage is not None and usage.sweep is not None:
                if usage.since is not None and now - usage.since < self.sweep_lease:
                    if waited >= self.sweep_wait:
                        raise Unavailable({"digest": str(digest)},
                                          message="the blob is being garbage collected; retry")
                    self.sleep(pause)
                    waited += pause
                    pause = min(pause * 2, 0.5)
                    continue
            elif usage is not None and now - usage.touched < self.touch_interval:
                self._seen_fresh(key, usage.touched)
                return waited > 0
            try:
                self.storage.swap(key, Usage(now).to_json(), version)
                self._seen_fresh(key, now)
                return True
            except VersionConflict:
                continue  # someone else touched or swept it meanwhile: look again

    def begin_sweep(self, digest: Digest | str, version: str | None, usage: Usage, run: str) -> str:
        """Hold the record for collector run ``run`` (from the version read); the new version.

        :class:`~.storage.VersionConflict` if the record changed since it was read.
        """
        held = Usage(usage.touched, run, self.clock())
        self._recent.pop(record_key(digest), None)
        return self.storage.swap(record_key(digest), held.to_json(), version)

    def end_sweep(self, digest: Digest | str, version: str, usage: Usage, *, gone: bool) -> None:
        """Release a record after a sweep: drop it if the digest is gone, else restore it."""
        if gone:
            self.storage.delete(record_key(digest))
            return
        try:
            self.storage.swap(record_key(digest), Usage(usage.touched).to_json(), version)
        except VersionConflict:
            pass  # taken back after the lease: whoever did so keeps it

    def first_sight(self, digest: Digest | str, when: float) -> None:
        """Create the record of a digest a collector found without one (from before records)."""
        try:
            self.storage.swap(record_key(digest), Usage(when).to_json(), None)
        except VersionConflict:
            pass
