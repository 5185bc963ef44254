"""Single flight within a process, and the storage lease that allows one blob fill at a time anywhere.

:class:`Flights` runs one call per key at a time: callers that arrive while it runs wait for
its result (or its exception) instead of making their own upstream request.

:class:`FillLease` is a small record in the storage, ``proxy/fills/<alg>/<hex>``, taken and
renewed with the storage's compare-and-swap (:meth:`~docker_registry_wsgi.storage.Storage.swap`),
so that of all processes and hosts over one storage one at a time fills a blob; the record
expires if its holder dies, and another takes it over.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

from ..digests import Digest
from ..storage.base import KeyNotFound, Storage, VersionConflict

__all__ = ["Flights", "FillLease", "Holder", "LEASES_PREFIX", "LEASE_TTL"]

T = TypeVar("T")

LEASES_PREFIX = "proxy/fills/"
#: A fill renews its lease at a third of this; a holder silent for this long is taken to be dead.
LEASE_TTL = 60.0


class _Call(Generic[T]):
    __slots__ = ("done", "result", "error")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class Flights(Generic[T]):
    """At most one call per key at a time; callers arriving meanwhile share its outcome."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: dict[Hashable, _Call[T]] = {}

    def run(self, key: Hashable, call: Callable[[], T]) -> T:
        """``call()``, or the outcome of the call for ``key`` already under way."""
        with self._lock:
            current = self._calls.get(key)
            leader = current is None
            if current is None:
                current = self._calls[key] = _Call()
        if not leader:
            current.done.wait()
            if current.error is not None:
                raise current.error
            return current.result  # type: ignore[return-value]
        try:
            current.result = call()
            return current.result
        except BaseException as exc:
            current.error = exc
            raise
        finally:
            with self._lock:
                del self._calls[key]
            current.done.set()

    def __len__(self) -> int:
        with self._lock:
            return len(self._calls)


@dataclass(frozen=True)
class Holder:
    """Who holds a fill lease: an owner token, until when, and what it fills from."""

    owner: str
    expires: float
    source: str

    def to_json(self) -> bytes:
        return json.dumps({"owner": self.owner, "expires": self.expires, "source": self.source}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Holder":
        doc = json.loads(data)
        return cls(str(doc["owner"]), float(doc["expires"]), str(doc.get("source", "")))


def lease_key(digest: Digest) -> str:
    return f"{LEASES_PREFIX}{digest.algorithm}/{digest.hex}"


class FillLease:
    """The right to fill ``digest`` into the storage, for one fill (see the module docstring).

    ``source`` (the upstream URL and repository) is recorded so that a process that waited for
    another's fill knows whether the blob came from the repository it would have asked.
    """

    def __init__(self, storage: Storage, digest: Digest, source: str, *,
                 clock: Callable[[], float], ttl: float = LEASE_TTL) -> None:
        self.storage, self.digest, self.source = storage, digest, source
        self.key = lease_key(digest)
        self.clock, self.ttl = clock, ttl
        self.owner = secrets.token_hex(8)
        self._version: str | None = None
        self._renewed = 0.0

    def current(self) -> tuple[Holder | None, str | None]:
        """The record as it stands and its version; an unreadable one counts as expired."""
        try:
            data, version = self.storage.read_versioned(self.key)
        except KeyNotFound:
            return None, None
        try:
            return Holder.from_json(data), version
        except (ValueError, KeyError, TypeError):
            return Holder("", 0.0, ""), version

    def acquire(self) -> bool:
        """Take the lease if nobody holds it or its holder's time ran out; whether we hold it now."""
        holder, version = self.current()
        now = self.clock()
        if holder is not None and holder.expires > now:
            return False
        try:
            self._version = self.storage.swap(self.key, self._record(now), version)
        except VersionConflict:
            return False  # another process took it between our read and our swap
        self._renewed = now
        return True

    def renew(self) -> bool:
        """Extend the lease if a third of its time has passed; ``False`` if it was taken from us."""
        if self._version is None:
            return False
        now = self.clock()
        if now - self._renewed < self.ttl / 3:
            return True
        try:
            self._version = self.storage.swap(self.key, self._record(now), self._version)
        except VersionConflict:
            self._version = None
            return False
        self._renewed = now
        return True

    def release(self) -> None:
        """Give the lease up (unless it was taken over meanwhile, which leaves it to its taker)."""
        if self._version is None:
            return
        try:
            self.storage.swap(self.key, Holder(self.owner, 0.0, self.source).to_json(), self._version)
        except (VersionConflict, KeyNotFound):
            return
        finally:
            self._version = None
        # An expired record is as good as none; deleting it keeps ``proxy/fills/`` small. A taker
        # that swapped in between our swap and this delete loses its record: at worst one more
        # fill of the same bytes, which commit keeps as they are.
        self.storage.delete(self.key)

    def _record(self, now: float) -> bytes:
        return Holder(self.owner, now + self.ttl, self.source).to_json()
