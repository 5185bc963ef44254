"""Blob fills: an upstream blob streamed to the clients that asked while it is written to storage.

A fill runs on a thread of its own, so a client that disconnects does not stop it. It reads
the upstream's body in pieces of at most 1 MiB and hands each piece to the storage (through
:meth:`~docker_registry_wsgi.content.RegistryContent.push_blob`: one upload, hashed on the way,
verified against the digest, and only then committed and linked) and to every subscribed
request. The last piece is handed to the subscribers only once the blob is verified and
committed, so no client ever receives a whole body of bytes that do not match their digest:
on a mismatch, the subscribers' responses are cut short and nothing is stored.

Who streams what:

* The requests that join a fill before it hands out its first piece stream it live. A request
  arriving later waits for the fill to end and reads the blob from storage.
* Of all processes and hosts over one storage, one fills a blob at a time (a
  :class:`~.flights.FillLease`). A process that finds the lease held waits for the holder's
  fill, up to ``fill_wait`` seconds, polling the storage; then it streams from the upstream
  without storing. A holder that dies is replaced when its lease runs out.
* At most ``max_fills`` fills run in a process; beyond that, requests stream from the upstream
  without storing, and such a stream ends when its last client leaves.

Memory is bounded: each subscriber holds at most ``SUBSCRIBER_PIECES`` pieces, and a subscriber
that takes none for ``stall_timeout`` seconds is dropped (its response cut short) so that one
slow client cannot stall the fill for the others.
"""

from __future__ import annotations

import errno
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

from ..digests import Digest, new_hasher
from ..errors import (
    BlobUnknown,
    DigestInvalid,
    InsufficientStorage,
    RegistryError,
    SizeInvalid,
    Unavailable,
    UpstreamFailed,
)
from ..storage.base import StorageError, StorageFull
from ..streams import CHUNK_SIZE
from .flights import FillLease
from .upstream import BlobStream, Upstream, UpstreamError

if TYPE_CHECKING:
    from ..content import RegistryContent

__all__ = ["Fills", "FillOutcome", "LiveReader", "StreamCut", "SUBSCRIBER_PIECES"]

#: Pieces (of up to 1 MiB) a subscriber may have waiting before the fill waits for it.
SUBSCRIBER_PIECES = 4


class StreamCut(ConnectionResetError):
    """A live blob response cut short: the fill failed (upstream error, digest mismatch).

    A ``ConnectionResetError`` so that WSGI servers close the connection without a traceback
    (the fill logged why): the client sees a body shorter than its ``Content-Length``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(errno.ECONNRESET, reason)


class LiveReader:
    """One request's view of a fill: the pieces as they come, from ``offset``; a ``BlobReader``."""

    def __init__(self, limit: int = SUBSCRIBER_PIECES) -> None:
        self._cond = threading.Condition()
        self._pieces: deque[bytes] = deque()
        self._limit = limit
        self._ended = False
        self._error: str | None = None
        self._closed = False
        self._current = b""
        self._position = 0
        self._skip = 0

    # -- the fill's side -----------------------------------------------------------------------

    def offer(self, piece: bytes, timeout: float) -> bool:
        """Queue ``piece``; ``False`` (and the reader is dropped) if it took none for ``timeout``."""
        with self._cond:
            room = self._cond.wait_for(lambda: self._closed or len(self._pieces) < self._limit, timeout)
            if self._closed:
                return False
            if not room:
                self._error = "the client read nothing for too long"
                self._closed = True
                self._cond.notify_all()
                return False
            self._pieces.append(piece)
            self._cond.notify_all()
            return True

    def end(self, error: str | None = None) -> None:
        """No more pieces: the blob is complete, or (``error``) the response must be cut short."""
        with self._cond:
            self._ended = True
            self._error = self._error or error
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the request's side --------------------------------------------------------------------

    def seek(self, offset: int) -> None:
        """Start at ``offset`` (a ``Range`` request): the pieces before it are dropped as they come."""
        self._skip = offset

    def read(self, size: int = -1) -> bytes:
        while True:
            if self._position < len(self._current):
                end = len(self._current) if size is None or size < 0 else self._position + size
                data = self._current[self._position:end]
                self._position += len(data)
                return data
            with self._cond:
                self._cond.wait_for(lambda: self._pieces or self._ended or self._closed)
                if self._pieces and self._error is None:
                    self._current, self._position = self._pieces.popleft(), 0
                    self._cond.notify_all()
                elif self._error is not None:
                    raise StreamCut(self._error)
                elif self._closed:
                    raise StreamCut("the response was closed")
                else:
                    return b""
            if self._skip:
                dropped = min(self._skip, len(self._current))
                self._position, self._skip = dropped, self._skip - dropped

    def close(self) -> None:
        """The response is done with (or the client left): the fill stops handing pieces to it."""
        with self._cond:
            self._closed = True
            self._pieces.clear()
            self._cond.notify_all()


@dataclass(frozen=True)
class FillOutcome:
    """For one request: a live stream of ``size`` bytes, or (``reader`` ``None``) the blob is stored."""

    reader: LiveReader | None = None
    size: int = 0


STARTING, WAITING, STREAMING, STORED, FAILED = "starting", "waiting", "streaming", "stored", "failed"


class _Fill:
    """One blob fetched from the upstream by one thread (see the module docstring)."""

    def __init__(self, fills: "Fills", key: tuple[str, str, str], content: "RegistryContent",
                 upstream: Upstream, local_name: str, upstream_name: str, digest: Digest,
                 *, store: bool, fill_wait: float) -> None:
        self.fills, self.key, self.content, self.upstream = fills, key, content, upstream
        self.local_name, self.upstream_name, self.digest = local_name, upstream_name, digest
        self.store, self.fill_wait = store, fill_wait
        self.source = f"{upstream.url}/{upstream_name}"
        self.cond = threading.Condition()
        self.state = STARTING
        self.size: int | None = None
        self.error: RegistryError | None = None
        self.published = False
        self.subscribers: list[LiveReader] = []
        self.done = threading.Event()
        self._last: bytes | None = None

    # -- requests ------------------------------------------------------------------------------

    def subscribe(self) -> LiveReader | None:
        """A live reader, if the fill has not handed out a piece yet."""
        with self.cond:
            if self.published or self.state in (STORED, FAILED):
                return None
            reader = LiveReader()
            self.subscribers.append(reader)
            return reader

    def outcome(self, reader: LiveReader | None) -> FillOutcome | None:
        """Wait until the request can go on: streaming (if ``reader`` was admitted) or ended.

        ``None`` when the fill streams without storing and ``reader`` came too late for it.
        """
        with self.cond:
            self.cond.wait_for(lambda: self.state in (STREAMING, STORED, FAILED))
            if self.state == STREAMING and reader is not None and self.size is not None:
                return FillOutcome(reader, self.size)
            if not self.store and self.state != FAILED:
                if reader is not None:
                    reader.close()
                return None
        if reader is not None:
            reader.close()
        self.done.wait()
        if self.state == FAILED:
            assert self.error is not None
            raise _again(self.error)
        return FillOutcome()

    def _set(self, state: str, size: int | None = None) -> None:
        with self.cond:
            self.state = state
            if size is not None:
                self.size = size
            self.cond.notify_all()

    # -- the fill's thread ---------------------------------------------------------------------

    def run(self) -> None:
        lease: FillLease | None = None
        try:
            if self.store:
                lease = self._take_lease()
            if self.state != STORED:
                self._stream(lease)
        except (DigestInvalid, SizeInvalid) as exc:
            self._fail(UpstreamFailed(
                exc.detail, message=f"{self.upstream.url} sent bytes that do not match {self.digest} "
                                    f"({exc.message}); nothing was stored"))
        except UpstreamError as exc:
            self._fail(self.fills.upstream_error(exc, self.digest))
        except RegistryError as exc:
            self._fail(exc)
        except StorageFull as exc:
            self._fail(InsufficientStorage({"digest": str(self.digest)}), f"the storage is full: {exc}")
        except (StorageError, OSError) as exc:
            self._fail(Unavailable({"digest": str(self.digest)},
                                   message="the blob could not be stored; retry later"),
                       f"the storage failed: {exc}")
        except Exception:  # noqa: BLE001 - the fill's thread has no one else to report to
            self.fills.log.exception("filling %s from %s failed", self.digest, self.source)
            self._fail(UpstreamFailed({"digest": str(self.digest)}, message="the fill failed"))
        finally:
            if self.state not in (STORED, FAILED):  # never leave a waiter waiting
                self._fail(UpstreamFailed({"digest": str(self.digest)}, message="the fill stopped"))
            if lease is not None:
                try:
                    lease.release()
                except StorageError as exc:
                    self.fills.log.warning("releasing the fill lease of %s: %s", self.digest, exc)
            self.fills.finished(self)
            self.done.set()

    def _fail(self, error: RegistryError, reason: str | None = None) -> None:
        if not isinstance(error, _Abandoned):
            self.fills.log.warning("fill of %s from %s failed: %s", self.digest, self.source, reason or error)
        self.error = error
        with self.cond:
            for reader in self.subscribers:
                reader.end(error.message)
        self._set(FAILED)

    def _take_lease(self) -> FillLease | None:
        """Our lease; ``None`` once another fill stored the blob (state STORED) or we gave up waiting."""
        lease = FillLease(self.content.storage, self.digest, self.source, clock=self.fills.clock)
        deadline = self.fills.clock() + self.fill_wait
        pause = 0.05
        holder_source: str | None = None
        while True:
            if self._stored_elsewhere(confirmed=holder_source == self.source):
                return None
            if lease.acquire():
                return lease
            holder, _ = lease.current()
            if holder is not None:
                holder_source = holder.source
            if self.state == STARTING:
                self._set(WAITING)
            if self.fills.clock() >= deadline:
                self.fills.log.warning("%s: another fill of %s takes more than %gs; streaming from "
                                       "the upstream without storing", self.source, self.digest,
                                       self.fill_wait)
                self.store = False
                return None
            self.fills.wait_for_other(self.digest, self, pause)
            pause = min(pause * 2, 1.0)

    def _stored_elsewhere(self, *, confirmed: bool) -> bool:
        """Whether the blob is in storage already; if so, link it here and end the fill.

        The bytes are the digest's, but whether our upstream repository has them is for the
        upstream to say (a ``HEAD``), unless a fill from that same repository stored them: else
        a digest would open a blob of another repository, maybe a private one.
        """
        if self.content.blobs.stored_size(self.digest) is None:
            return False
        if not confirmed:
            self.upstream.head_blob(self.upstream_name, str(self.digest))
        size = self.content.blobs.adopt(self.local_name, self.digest)
        if size is None:
            return False  # collected meanwhile
        self._set(STORED, size)
        return True

    def _stream(self, lease: FillLease | None) -> None:
        body = self.upstream.open_blob(self.upstream_name, str(self.digest))
        try:
            if body.length is None and not self.store:
                raise UpstreamFailed({"digest": str(self.digest)},
                                     message=f"{self.upstream.url} sent the blob without a length")
            self._set(STREAMING, body.length)
            pieces = self._pieces(body, lease)
            if self.store:
                self.content.push_blob(self.local_name, self.digest, pieces, length=body.length)
                self._set(STORED)
            else:
                self._verify(pieces)
            self._publish_last()
            with self.cond:
                for reader in self.subscribers:
                    reader.end()
            if not self.store:
                self._set(STORED)  # nothing stored; its readers have had every byte
        finally:
            body.close()

    def _verify(self, pieces: Iterator[bytes]) -> None:
        hasher = new_hasher(self.digest.algorithm)
        for piece in pieces:
            hasher.update(piece)
        actual = Digest(self.digest.algorithm, hasher.finalize())
        if actual != self.digest:
            raise UpstreamFailed({"expected": str(self.digest), "actual": str(actual)},
                                 message=f"{self.upstream.url} sent bytes that do not match the digest")

    def _pieces(self, body: BlobStream, lease: FillLease | None) -> Iterator[bytes]:
        """The body in pieces, each handed to the subscribers as it comes, but the last.

        The last piece (the one that completes ``Content-Length``, or without a length the one
        before the end) is kept for :meth:`_publish_last`, after the digest is verified.
        """
        held: bytes | None = None
        while piece := body.read(CHUNK_SIZE):
            if held is not None:
                self._publish(held)
                held = None
            if body.length is not None and body.received < body.length:
                self._publish(piece)
            else:
                held = piece
            yield piece
            if lease is not None and not lease.renew():
                self.fills.log.warning("%s: the fill lease of %s was taken over; filling on",
                                       self.source, self.digest)
                lease = None
        self._last = held

    def _publish(self, piece: bytes) -> None:
        with self.cond:
            self.published = True
            readers = [r for r in self.subscribers if not r.closed]
        for reader in readers:
            reader.offer(piece, self.fills.stall_timeout)
        if not self.store and all(r.closed for r in readers):
            raise _Abandoned(message="every client left a stream that is not stored")

    def _publish_last(self) -> None:
        if self._last is not None:
            self._publish(self._last)


class Fills:
    """The fills of one process: one per upstream repository and digest (see the module docstring)."""

    def __init__(self, *, clock: Callable[[], float] = time.time,
                 logger: logging.Logger | None = None, max_fills: int = 32,
                 stall_timeout: float = 60.0,
                 upstream_error: Callable[[UpstreamError, Digest], RegistryError] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.clock = clock
        self.log = logger or logging.getLogger("docker_registry_wsgi.proxy")
        self.max_fills = max_fills
        self.stall_timeout = stall_timeout
        self.sleep = sleep
        self.upstream_error = upstream_error or _default_error
        self._lock = threading.Lock()
        self._running: dict[tuple[str, str, str], _Fill] = {}
        self._by_digest: dict[Digest, list[_Fill]] = {}
        #: Every fill's thread, started here; tests join them.
        self.threads: list[threading.Thread] = []

    def fetch(self, content: "RegistryContent", upstream: Upstream, local_name: str,
              upstream_name: str, digest: Digest, *, fill_wait: float) -> FillOutcome:
        """Fill ``digest`` (or join its fill) for a ``GET``; a live stream or "it is stored now"."""
        key = (upstream.url, upstream_name, str(digest))
        with self._lock:
            fill = self._running.get(key)
            if fill is not None and fill.state == FAILED:
                fill = None  # its failure was for those who waited for it; we ask again
            started = fill is None
            if fill is None:
                store = sum(1 for f in self._running.values() if f.store) < self.max_fills
                fill = self._start(key, content, upstream, local_name, upstream_name, digest,
                                   store=store, fill_wait=fill_wait)
            reader = fill.subscribe()
        if started:
            self._launch(fill)
        outcome = fill.outcome(reader)
        if outcome is not None:
            return outcome
        # A stream that is not stored and began before we came: a stream of our own.
        with self._lock:
            own = _Fill(self, key, content, upstream, local_name, upstream_name, digest,
                        store=False, fill_wait=0.0)
            reader = own.subscribe()
        self._launch(own)
        outcome = own.outcome(reader)
        assert outcome is not None
        return outcome

    def _start(self, key: tuple[str, str, str], content: "RegistryContent", upstream: Upstream,
               local_name: str, upstream_name: str, digest: Digest, *, store: bool,
               fill_wait: float) -> _Fill:
        fill = _Fill(self, key, content, upstream, local_name, upstream_name, digest,
                     store=store, fill_wait=fill_wait)
        self._running[key] = fill
        self._by_digest.setdefault(digest, []).append(fill)
        return fill

    def _launch(self, fill: _Fill) -> None:
        thread = threading.Thread(target=fill.run, name=f"fill {fill.digest}", daemon=True)
        with self._lock:
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def finished(self, fill: _Fill) -> None:
        with self._lock:
            if self._running.get(fill.key) is fill:
                del self._running[fill.key]
            others = self._by_digest.get(fill.digest, [])
            if fill in others:
                others.remove(fill)
            if not others:
                self._by_digest.pop(fill.digest, None)

    def wait_for_other(self, digest: Digest, waiter: _Fill, pause: float) -> None:
        """Wait ``pause`` for the lease holder: on its fill's end if it is ours, else by sleeping."""
        with self._lock:
            local = [f for f in self._by_digest.get(digest, []) if f is not waiter and f.store]
        if local:
            local[0].done.wait(pause)
        else:
            self.sleep(pause)

    def running(self) -> int:
        with self._lock:
            return len(self._running)


class _Abandoned(UpstreamFailed):
    """A stream without storing that no client reads any more: it stops, quietly."""


def _again(error: RegistryError) -> RegistryError:
    """A copy of ``error`` to raise in one more thread (a raise writes the traceback into it)."""
    clone = error.__class__.__new__(error.__class__)
    clone.__dict__.update(error.__dict__)
    clone.args = error.args
    return clone


def _default_error(error: UpstreamError, digest: Digest) -> RegistryError:
    if error.not_found:
        return BlobUnknown({"digest": str(digest), "upstream": error.upstream})
    return UpstreamFailed({"digest": str(digest)}, message=str(error))

