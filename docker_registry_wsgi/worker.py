"""The standalone server's gunicorn worker: slow clients wait without holding anyone else up.

gunicorn's gthread worker hands every new connection to its pool of ``threads`` threads at once;
reading the request head then blocks a thread, and so does reading a body or sending a response
to a slow client: 16 clients sending one header line every 2 s hold every thread of the default
server, and nobody else is answered. :class:`ThreadWorker`, a subclass of gthread's, changes
three things:

* Heads are read in the event loop from non-blocking sockets, with a deadline
  (``header_timeout``); only a request whose head is complete goes to a thread. Idle and
  half-sent connections cost a socket and a small buffer each, up to ``worker_connections``; at
  that cap, each new connection closes the one that has gone longest without a complete request.
* A request gives its turn back when it starts waiting for its client. ``threads`` is the number
  of requests that run at once (:class:`Crew`); one whose thread is about to block receiving a
  body or sending a response (:class:`ClientSocket`) lets the next request start in another
  thread, and the pool grows as needed, up to a thread per connection (a thread blocked in a
  system call costs no CPU and about 25 KiB). Simply running more threads would cost GIL
  hand-offs between them: with 256 threads, a small request took 75 % more CPU than with 8.
* Every client socket has a receive timeout (``SO_RCVTIMEO``, ``body_timeout``): a body that
  sends nothing for that long fails with :class:`ClientTimeout`, a slow but steady one goes on.
  The kernel's timeout keeps the socket blocking, so ``recv(..., MSG_WAITALL)`` still fills
  whole chunks for fast uploads.

The graceful close after a response (wait for the client's end of the connection) is watched by
the event loop too, where gthread blocks the loop for up to 2 s per client.
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import struct
import threading
import time
from collections import deque
from concurrent.futures import Future
from functools import partial
from typing import Any, Callable

from gunicorn.http2 import negotiation
from gunicorn.workers import gthread

from . import logs

__all__ = ["ClientTimeout", "ClientSocket", "Connection", "Crew", "ThreadWorker", "head_end",
           "set_receive_timeout"]

#: Bytes read per readiness event while a head arrives.
HEAD_READ_SIZE = 16 << 10
#: A head still incomplete at this size goes to a thread anyway: gunicorn's parser reads the
#: rest or refuses it (its own limits are larger), and no connection buffers more than this here.
HEAD_BUFFER_LIMIT = 64 << 10
#: What :meth:`ThreadWorker._take` found.
_MORE, _WHOLE, _GONE = object(), object(), object()
#: How a TLS connection starts (a handshake record, TLS 1.x): never an HTTP request.
TLS_HANDSHAKE = b"\x16\x03"
#: A held response head is joined (copied) to a first body piece up to this size; a larger piece
#: goes in a call of its own after the head.
HELD_JOIN_LIMIT = 64 << 10
#: Connections accepted per readiness event of a listener.
ACCEPT_BURST = 64
#: A connection younger than this (in seconds) is not closed to make room for new ones.
EVICT_AGE = 1.0
#: Seconds without accepting after running out of file descriptors with no connection to spare.
ACCEPT_PAUSE = 0.5
#: Seconds a stopping worker still waits for the heads being received.
STOP_LINGER = 2.0
#: A graceful close waits this long, and reads at most this much, for the client to close.
LINGER_SECONDS = 2.0
LINGER_BYTES = 64 << 10


class ClientTimeout(ConnectionError):
    """The client sent nothing for the receive timeout while a request was being read."""

    def __init__(self) -> None:
        super().__init__(errno.ETIMEDOUT, "the client sent nothing within the body timeout")


class Crew:
    """The worker's threads: at most ``turns`` calls run at once, but a call that waits on its
    client lets the next one start.

    A call about to block on its client calls :meth:`lend`: its turn goes to the next queued call,
    in a parked thread or a new one (up to ``max_threads``), and the lending call runs on without
    a turn when its wait ends (making it wait for a turn again could deadlock on a lock it holds
    that a turn holder waits for). A thread that ends a call with its turn takes the next queued
    call itself, as in a plain pool; each parked thread waits on a lock of its own, so a new call
    wakes exactly one thread. Parked threads stay, as in ``ThreadPoolExecutor``.
    """

    def __init__(self, turns: int, max_threads: int) -> None:
        self._lock = threading.Lock()
        self._queue: deque[_Call] = deque()
        self._parked: list[_Parked] = []
        self._free = turns
        self._threads = 0
        self._max_threads = max(turns, max_threads)
        self._local = threading.local()
        self._stopped = False

    @property
    def queued(self) -> int:
        """Calls waiting for a turn."""
        with self._lock:
            return len(self._queue)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Queue ``fn(*args)``; it starts when a turn is free."""
        call = _Call(Future(), fn, args)
        with self._lock:
            if self._stopped:
                raise RuntimeError("cannot schedule new calls after shutdown")
            self._queue.append(call)
            self._start()
        return call.future

    def go_on(self) -> bool:
        """In a call that could do more work: whether it may, now that nobody waits for a turn.

        A call that lent its turn takes a free one back; without one, or with calls queued, it
        should end and let the queue have its turn.
        """
        with self._lock:
            if self._queue or self._stopped:
                return False
            if not getattr(self._local, "turn", False):
                if self._free <= 0:
                    return False
                self._free -= 1
                self._local.turn = True
            return True

    def lend(self) -> None:
        """In a call about to wait on its client: let the next queued call have this turn."""
        if getattr(self._local, "turn", False):
            with self._lock:
                self._local.turn = False
                self._free += 1
                self._start()

    def shutdown(self, wait: bool = True) -> None:
        """Start nothing more: parked threads end, running calls finish, queued ones never start
        (``wait`` is accepted for gthread's sake and ignored)."""
        with self._lock:
            self._stopped = True
            parked, self._parked = self._parked, []
        for slot in parked:
            slot.wake.release()

    def _start(self) -> None:
        """With the lock held: give free turns and queued calls to parked or new threads."""
        while self._queue and self._free > 0 and not self._stopped:
            if self._parked:
                slot = self._parked.pop()
                slot.call = self._queue.popleft()
                self._free -= 1
                slot.wake.release()
            elif self._threads < self._max_threads:
                self._threads += 1
                self._free -= 1
                threading.Thread(target=self._work, args=(self._queue.popleft(),), daemon=True,
                                 name=f"crew-{self._threads}").start()
            else:
                return

    def _work(self, call: _Call | None) -> None:
        self._local.turn = True
        slot = _Parked()
        while call is not None:
            if call.future.set_running_or_notify_cancel():
                try:
                    result = call.fn(*call.args)
                except BaseException as exc:  # handed to the future, as in ThreadPoolExecutor
                    call.future.set_exception(exc)
                else:
                    call.future.set_result(result)
            call = self._next(slot)

    def _next(self, slot: _Parked) -> _Call | None:
        """After a call: the next queued one if this thread has or gets a turn, else park."""
        with self._lock:
            if not self._local.turn and self._free > 0 and self._queue:
                self._free -= 1
                self._local.turn = True
            if self._local.turn and self._queue and not self._stopped:
                return self._queue.popleft()
            if self._local.turn:
                self._local.turn = False
                self._free += 1
            if self._stopped:
                self._threads -= 1
                return None
            slot.call = None
            self._parked.append(slot)
        slot.wake.acquire()  # held again afterwards: ready for the next park
        if slot.call is None:  # shut down
            with self._lock:
                self._threads -= 1
            return None
        self._local.turn = True
        return slot.call


class _Call:
    """A queued call and the future that gets its result."""

    __slots__ = ("future", "fn", "args")

    def __init__(self, future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.future, self.fn, self.args = future, fn, args


class _Parked:
    """A thread's parking place: ``wake`` is released when ``call`` (with a turn) or shutdown (None)
    is set; the thread parks on it each time it is idle."""

    __slots__ = ("wake", "call")

    def __init__(self) -> None:
        self.wake = threading.Lock()
        self.wake.acquire()
        self.call: _Call | None = None


class ClientSocket(socket.socket):
    """A client connection that says when a request's thread is about to wait on the client.

    ``on_wait``, if set, is called before each blocking call that may wait: a receive, a send
    that does not fit in the send buffer at once, a ``sendfile``. Blocking receives end at
    ``SO_RCVTIMEO`` with :class:`ClientTimeout`: the kernel reports that timeout as ``EAGAIN``,
    which code reading a body takes for a server fault; as a :class:`ConnectionError` it is the
    client's (the registry answers it as a failed upload). Non-blocking calls (the event
    loop's) are left as they are.

    A request thread's response head is held back and goes out with the first piece of the
    body, or when the request ends (:meth:`flush`): gunicorn writes the two separately, and
    one system call instead of two is a large share of a small request's cost. Interim
    responses (``1xx``) go at once.
    """

    __slots__ = ("on_wait", "held")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_wait: Callable[[], None] | None = None
        self.held: bytes | None = None

    def _waiting(self) -> None:
        if self.on_wait is not None and self.gettimeout() != 0.0:
            self.on_wait()

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._waiting()
        try:
            return super().recv(bufsize, flags)
        except BlockingIOError:
            if self.gettimeout() is not None:
                raise
            raise ClientTimeout() from None

    def sendall(self, data: Any, flags: int = 0) -> None:
        if self.on_wait is None or self.gettimeout() == 0.0:
            return super().sendall(data, flags)
        if self.held is None:
            if is_response_head(data):
                self.held = data
                return None
        elif len(data) <= HELD_JOIN_LIMIT:
            data, self.held = self.held + bytes(data), None
        else:
            self.flush()
        return self._send(data, flags)

    def flush(self) -> None:
        """Send a held response head now (at the end of a request, before a ``sendfile``)."""
        if self.held is not None:
            head, self.held = self.held, None
            self._send(head, 0)

    def _send(self, data: Any, flags: int) -> None:
        try:  # what fits in the send buffer goes without waiting (every small response)
            sent = self.send(data, flags | socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        size = len(data) if isinstance(data, bytes) else memoryview(data).nbytes
        if sent < size:
            self._waiting()
            super().sendall(memoryview(data).cast("B")[sent:], flags)
        return None

    def sendfile(self, file: Any, offset: int = 0, count: int | None = None) -> int:
        self.flush()
        self._waiting()
        return super().sendfile(file, offset, count)


def is_response_head(data: object) -> bool:
    """Whether ``data`` is a whole final response head as gunicorn writes it (not a ``1xx``)."""
    return (
        isinstance(data, bytes)
        and data.startswith(b"HTTP/1.")
        and data[9:10] not in (b"1", b"")
        and data.endswith(b"\r\n\r\n")
    )


def set_receive_timeout(sock: socket.socket, seconds: float) -> None:
    """Set ``SO_RCVTIMEO`` (0: none): a blocking receive fails after that long without data."""
    whole = int(seconds)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO,
                    struct.pack("ll", whole, int((seconds - whole) * 1_000_000)))


def head_end(buffer: bytes | bytearray, start: int = 0) -> bool:
    """Whether ``buffer`` holds the end of a request head, looking from about ``start`` on.

    The end is an empty line: CRLF CRLF, or a bare LF, which gunicorn's parser refuses at once
    (so the request goes to it rather than waiting for a CRLF that may never come).
    """
    start = max(0, start - 3)
    return buffer.find(b"\n\r\n", start) >= 0 or buffer.find(b"\n\n", start) >= 0


class Connection(gthread.TConn):  # type: ignore[misc]
    """A client connection with the part of its next request head received so far.

    ``linger`` does a graceful close without blocking (see :meth:`ThreadWorker.linger`).
    """

    def __init__(self, cfg: Any, sock: socket.socket, client: Any, server: Any,
                 linger: Callable[["Connection"], None]) -> None:
        super().__init__(cfg, sock, client, server)
        self.head = bytearray()
        #: When the loop started waiting for this head, and when it stops waiting.
        self.since = 0.0
        self.deadline = 0.0
        self.registered = False
        self.drained = 0
        self.linger = linger

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.linger(self)
        else:
            super().close()


class ThreadWorker(gthread.ThreadWorker):  # type: ignore[misc]
    """gthread, with heads read in the event loop, turns given back by requests that wait on
    their client, and a receive timeout on bodies.

    ``header_timeout``: seconds from accepting a connection, or from the first byte of a
    kept-alive connection's next request, to the end of the head; then the connection is closed.
    ``body_timeout``: seconds a blocking receive may wait for the client (0: no limit).
    :meth:`configured` makes a subclass with other values.
    """

    header_timeout: float = 20.0
    body_timeout: float = 60.0

    @classmethod
    def configured(cls, *, header_timeout: float, body_timeout: float) -> type["ThreadWorker"]:
        """A subclass with these timeouts, to give gunicorn as its ``worker_class``."""
        return type(cls.__name__, (cls,), {"header_timeout": header_timeout, "body_timeout": body_timeout})

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        """No warning when threads outnumber ``worker_connections``: idle connections take no thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Kept-alive connections wait in the loop like the others, under the same cap.
        self.max_keepalived = self.worker_connections
        #: Connections whose head is being received, oldest deadline first.
        self.reading: dict[Connection, None] = {}
        #: Connections closed gracefully, waiting for the client's end, by deadline.
        self.lingering: dict[Connection, float] = {}
        self.stop_deadline: float | None = None
        #: Out of file descriptors: no accepting before this time; no warning again before that.
        self.accept_paused_until = 0.0
        self.quiet_until = 0.0

    def init_process(self) -> None:
        self._raise_file_limit()
        super().init_process()

    def _raise_file_limit(self) -> None:
        """Each connection is a file descriptor: make room for the cap, as far as the hard limit allows."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = 2 * self.worker_connections + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            if new > soft:
                resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))

    def get_thread_pool(self) -> Crew:
        """``threads`` requests at once, and up to a thread per connection for those waiting on clients."""
        return Crew(self.cfg.threads, self.worker_connections)

    # -- accepting ---------------------------------------------------------------------------

    def _reads_heads(self, client: Any) -> bool:
        """TLS and HTTP/2 prior-knowledge connections start in a thread, as in gthread."""
        return not self.cfg.is_ssl and not negotiation.prior_knowledge_allowed(self.cfg, client)

    def accept(self, listener: Any) -> None:
        for _ in range(ACCEPT_BURST):
            if self.nr_conns >= self.worker_connections and not self._evictable():
                return
            try:
                raw, client = listener.accept()
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE):
                    # Out of file descriptors: free one if a connection can make room.
                    if self._evictable():
                        self._make_room()
                        continue
                    now = time.monotonic()
                    self.accept_paused_until = now + ACCEPT_PAUSE
                    super().set_accept_enabled(False)
                    if now >= self.quiet_until:
                        self.log.warning("cannot accept connections: %s", exc)
                        self.quiet_until = now + 10.0
                elif exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                    raise
                return
            if self.nr_conns >= self.worker_connections:
                self._make_room()
            self.nr_conns += 1
            if not self._reads_heads(client):
                raw.setblocking(True)
                self.enqueue_req(gthread.TConn(self.cfg, raw, client, listener.getsockname()))
                continue
            sock = ClientSocket(raw.family, raw.type, raw.proto, fileno=raw.detach())
            sock.on_wait = self.tpool.lend
            conn = Connection(self.cfg, sock, client, listener.getsockname(), self.linger)
            try:
                if self.body_timeout > 0:
                    set_receive_timeout(sock, self.body_timeout)
            except OSError:
                self.nr_conns -= 1
                conn.close()
                continue
            self._start_head(conn)

    # -- reading heads in the loop -----------------------------------------------------------

    def _start_head(self, conn: Connection) -> None:
        """Read what has arrived of the connection's next head; wait in the loop for the rest."""
        if conn.sock.gettimeout() != 0.0:
            conn.sock.setblocking(False)
        outcome = self._take(conn)
        if outcome is _MORE:
            conn.since = time.monotonic()
            conn.deadline = conn.since + self.header_timeout
            if self.stop_deadline is not None:
                conn.deadline = min(conn.deadline, self.stop_deadline)
            self.reading[conn] = None
            callback = partial(self._receive_head, conn)
            if conn.registered:
                self.poller.modify(conn.sock, selectors.EVENT_READ, callback)
            else:
                self.poller.register(conn.sock, selectors.EVENT_READ, callback)
                conn.registered = True
            return
        self._unregister(conn)
        self._finish_head(conn, outcome)

    def _receive_head(self, conn: Connection, _sock: Any) -> None:
        """The poller's callback for a connection in the middle of its head."""
        outcome = self._take(conn)
        if outcome is not _MORE:
            self._stop_reading(conn)
            self._finish_head(conn, outcome)

    def _take(self, conn: Connection) -> object:
        """Receive what arrived: ``_WHOLE`` once the head is complete, ``_GONE`` at the end of the
        connection, else ``_MORE``."""
        try:
            data = conn.sock.recv(HEAD_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return _MORE
        except OSError:
            return _GONE
        if not data:
            return _GONE
        seen = len(conn.head)
        conn.head += data
        if seen < len(TLS_HANDSHAKE) and conn.head.startswith(TLS_HANDSHAKE):
            # A client trying TLS first (skopeo does): closing at once lets it fall back to
            # plain HTTP now, not after its handshake timeout.
            self.log.debug("closing %s: a TLS handshake on a plain HTTP port", conn.client)
            return _GONE
        return _WHOLE if head_end(conn.head, seen) or len(conn.head) >= HEAD_BUFFER_LIMIT else _MORE

    def _finish_head(self, conn: Connection, outcome: object) -> None:
        if outcome is _WHOLE:
            self._dispatch(conn)
        else:
            self.nr_conns -= 1
            conn.close()

    def _unregister(self, conn: Connection) -> None:
        if conn.registered:
            conn.registered = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _stop_reading(self, conn: Connection) -> None:
        del self.reading[conn]
        self._unregister(conn)

    def _drop(self, conn: Connection) -> None:
        """Close a connection whose head is being read (at its deadline, or to make room)."""
        self._stop_reading(conn)
        self.nr_conns -= 1
        conn.close()

    def _dispatch(self, conn: Connection) -> None:
        """Hand a connection whose buffered bytes hold a whole head to the thread pool."""
        conn.init()  # the HTTP/1 parser: no I/O for a plain connection
        conn.parser.unreader.unread(bytes(conn.head))
        conn.head.clear()
        super().enqueue_req(conn)

    def enqueue_req(self, conn: Any) -> None:
        """A request to serve: now if its head is whole, else once the rest of it has arrived.

        gthread calls this when a response's body drain read ahead into the next request.
        """
        if not isinstance(conn, Connection):
            super().enqueue_req(conn)
            return
        conn.head[:0] = conn.parser.unreader.take_buffered()
        if head_end(conn.head):
            self._dispatch(conn)
        else:
            self._start_head(conn)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        """A kept-alive connection has bytes: its next head is read in the loop too."""
        if not isinstance(conn, Connection):
            super().on_client_socket_readable(conn, client)
            return
        self.keepalived_conns.remove(conn)
        conn.registered = True  # by gthread, for this callback; _start_head takes it over
        self._start_head(conn)

    # -- in the pool threads -----------------------------------------------------------------

    def handle(self, conn: Any) -> Any:
        """Serve a connection's request, then the next ones that are already there.

        A kept-alive client sends its next request as soon as it has read a response, often
        before this thread is done with the last one. Taking it here saves the round trip
        through the event loop: its wake-up, a poller registration and a thread's wake-up.
        """
        result = super().handle(conn)
        while result is True and isinstance(conn, Connection) and self._next_is_here(conn):
            result = super().handle(conn)
        return result

    def _next_is_here(self, conn: Connection) -> bool:
        """Whether this thread should serve the connection's next request now: its whole head
        has arrived, nobody waits for a turn, and the worker is not stopping.

        Whatever arrived of a head that is not whole goes back to gunicorn's buffer, where
        the event loop finds it (:meth:`enqueue_req`) and gives the rest its header deadline.
        """
        if not self.alive or not self.tpool.go_on():
            return False
        unreader = conn.parser.unreader
        head = unreader.take_buffered()
        whole = head_end(head)
        if not whole:
            try:  # nothing yet, the client's end (b""), or an error: the event loop sees to each
                data = socket.socket.recv(conn.sock, HEAD_READ_SIZE, socket.MSG_DONTWAIT)
            except OSError:
                data = b""
            head += data
            whole = bool(data) and head_end(head)
        if head:
            unreader.unread(head)
        return whole

    def handle_request(self, req: Any, conn: Any) -> bool:
        """One request; a client that stops sending its body is logged in a line and dropped.

        Log lines after it (of the event loop, of the next request) are not the request's.
        """
        try:
            try:
                return bool(super().handle_request(req, conn))
            finally:
                if isinstance(conn.sock, ClientSocket):
                    conn.sock.flush()  # a head held back for a body that never came
        except ClientTimeout as exc:
            self.log.info("closing %s: %s", conn.client, exc.strerror)
            return False
        finally:
            logs.clear()

    # -- timeouts and the connection cap -----------------------------------------------------

    def murder_pending(self) -> None:
        """Called on every turn of the loop: also end heads past their deadline, and lingering closes."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and self.stop_deadline is None:
            self.stop_deadline = now + STOP_LINGER
            for conn in self.reading:
                conn.deadline = min(conn.deadline, self.stop_deadline)
        while self.reading:
            conn = next(iter(self.reading))
            if conn.deadline > now:
                break
            self.log.debug("closing %s: no complete request head within %s s", conn.client, self.header_timeout)
            self._drop(conn)
        while self.lingering:
            conn, deadline = next(iter(self.lingering.items()))
            if deadline > now:
                break
            self._end_linger(conn)
        if not self._accepting and self.alive and self._evictable():
            self.set_accept_enabled(True)

    def set_accept_enabled(self, enabled: bool) -> None:
        """gthread stops accepting at ``worker_connections``; this worker goes on while a connection
        can make room, and pauses a moment when out of file descriptors with none to spare."""
        if self.alive:
            evictable = self._evictable()
            if not enabled and evictable:
                enabled = True
            elif enabled and not evictable and time.monotonic() < self.accept_paused_until:
                enabled = False
        super().set_accept_enabled(enabled)

    def _evictable(self) -> bool:
        """Whether a connection has gone at least ``EVICT_AGE`` seconds without a whole request.

        Younger ones are spared: a client that has just connected may not have sent its head
        yet, and closing it would let an attacker who reconnects fast push everyone else out.
        """
        old = time.monotonic() - EVICT_AGE
        if self.reading and next(iter(self.reading)).since <= old:
            return True
        return bool(self.keepalived_conns) and self.keepalived_conns[0].timeout - self.cfg.keepalive <= old

    def _make_room(self) -> None:
        """At the cap: close the connection that has gone longest without a request (callers check
        :meth:`_evictable` first): those still sending a head, the oldest first, then kept-alive
        idle ones."""
        if self.reading and next(iter(self.reading)).since <= time.monotonic() - EVICT_AGE:
            conn = next(iter(self.reading))
            self.log.debug("closing %s to make room: no complete request head yet", conn.client)
            self._drop(conn)
        elif self.keepalived_conns:
            conn = self.keepalived_conns.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self.nr_conns -= 1
            conn.close()

    # -- graceful close without blocking -----------------------------------------------------

    def linger(self, conn: Connection) -> None:
        """Close after a response (RFC 9112 section 9.6): send FIN, read what the client still
        sends until it closes or a bound is hit, then close, so that unread bytes cause no reset
        that could cut the response short.
        """
        try:
            conn.sock.shutdown(socket.SHUT_WR)
            conn.sock.setblocking(False)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._drain, conn))
        except (OSError, ValueError, KeyError):
            conn.sock.close()
            return
        self.lingering[conn] = time.monotonic() + LINGER_SECONDS

    def _drain(self, conn: Connection, _sock: Any) -> None:
        try:
            data = conn.sock.recv(HEAD_READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.drained += len(data)
        if not data or conn.drained >= LINGER_BYTES:
            self._end_linger(conn)

    def _end_linger(self, conn: Connection) -> None:
        del self.lingering[conn]
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        conn.sock.close()
