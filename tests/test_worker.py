"""The standalone server's worker (docker_registry_wsgi.worker), in parts and under real gunicorn.

Heads are read in the event loop: a connection holds a thread only once its head is whole, so
one thread serves others while any number of clients trickle their heads; a head is closed at
its deadline, and at the connection cap the oldest unfinished ones make room. Bodies are read in
threads with a receive timeout that cuts a body that stopped, not one that is slow. Requests
split across sends, pipelined, or kept alive are served as gunicorn's gthread serves them.
"""

from __future__ import annotations

import errno
import hashlib
import shutil
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi.worker import (HELD_JOIN_LIMIT, ClientSocket, ClientTimeout, Crew, head_end,
                                         set_receive_timeout)
from tests.support.rawhttp import connect, exchange, read_response, request, upload_session
from tests.support.servers import RegistryServer

# -- head_end: the one check of "this head is whole" -------------------------------------------


def _fed_in_pieces(data: bytes, cuts: list[int]) -> list[bool]:
    """head_end after each piece, scanning from where the previous piece ended (as the worker does)."""
    buffer, seen = bytearray(), []
    bounds = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    start = 0
    for bound in bounds:
        before = len(buffer)
        buffer += data[start:bound]
        start = bound
        seen.append(head_end(buffer, before))
    return seen


@given(st.binary(max_size=200), st.lists(st.integers(min_value=0, max_value=200), max_size=20))
def test_head_end_in_pieces_agrees_with_the_whole_buffer(data: bytes, cuts: list[int]) -> None:
    """Scanning only the new bytes (and the 3 before them) finds what a scan of everything finds."""
    bounds = sorted({min(c, len(data)) for c in cuts} | {len(data)})
    expected = [b"\n\r\n" in data[:b] or b"\n\n" in data[:b] for b in bounds]
    assert _fed_in_pieces(data, cuts) == expected


@given(st.lists(st.from_regex(r"[A-Za-z-]{1,20}: [ -~]{0,40}", fullmatch=True), max_size=10),
       st.lists(st.integers(min_value=0, max_value=600), max_size=30))
def test_a_head_is_whole_only_at_its_empty_line(fields: list[str], cuts: list[int]) -> None:
    """RFC 9112 section 2.1: a head ends with an empty line; no piece before it ends it."""
    head = ("GET /v2/ HTTP/1.1\r\n" + "".join(f"{f}\r\n" for f in fields) + "\r\n").encode()
    assert not any(_fed_in_pieces(head[:-2], cuts))
    assert _fed_in_pieces(head, cuts)[-1]


def test_a_bare_lf_head_goes_to_the_parser() -> None:
    """gunicorn refuses bare LF line ends (RFC 9112 section 2.2) at once: no wait for a CRLF."""
    assert head_end(b"GET / HTTP/1.1\nHost: x\n\n")
    assert not head_end(b"GET / HTTP/1.1\r\nHost: x\r\n")


# -- ClientSocket and the receive timeout -------------------------------------------------------


@pytest.fixture
def socket_pair() -> Iterator[tuple[ClientSocket, socket.socket]]:
    """A ClientSocket with a 0.2 s receive timeout, and its peer."""
    a, b = socket.socketpair()
    client = ClientSocket(a.family, a.type, a.proto, fileno=a.detach())
    set_receive_timeout(client, 0.2)
    try:
        yield client, b
    finally:
        client.close()
        b.close()


def test_a_receive_that_gets_nothing_is_a_client_timeout(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    client, _ = socket_pair
    with pytest.raises(ClientTimeout) as caught:
        client.recv(1024)
    assert isinstance(caught.value, ConnectionError)  # what body readers take as the client's fault
    assert caught.value.errno == errno.ETIMEDOUT


def test_a_slow_body_is_returned_in_part_not_cut(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    """MSG_WAITALL for 1 MiB with 5 bytes sent: the 5 bytes come back at the timeout, no error."""
    client, peer = socket_pair
    peer.sendall(b"hello")
    assert client.recv(1 << 20, socket.MSG_WAITALL) == b"hello"


def test_non_blocking_and_python_timeouts_are_left_alone(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    client, _ = socket_pair
    client.setblocking(False)
    with pytest.raises(BlockingIOError) as caught:
        client.recv(1024)
    assert not isinstance(caught.value, ClientTimeout)
    client.settimeout(0.05)
    with pytest.raises(TimeoutError):
        client.recv(1024)


def test_a_blocking_receive_says_it_waits_before_it_blocks(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    """on_wait runs before the receive blocks: here it is what sends the bytes the receive gets."""
    client, peer = socket_pair
    client.on_wait = lambda: peer.sendall(b"sent by on_wait")
    assert client.recv(1024) == b"sent by on_wait"


def test_a_send_that_fits_does_not_wait(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    client, peer = socket_pair
    waits: list[None] = []
    client.on_wait = lambda: waits.append(None)
    client.sendall(b"a small response")
    assert peer.recv(1024) == b"a small response" and waits == []


HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"


def _pending(peer: socket.socket) -> bytes:
    """What the peer can read now, without waiting."""
    try:
        return peer.recv(1 << 20, socket.MSG_DONTWAIT)
    except BlockingIOError:
        return b""


def test_a_response_head_goes_out_with_the_body_in_one_send(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    """gunicorn writes a response's head and body separately; the head waits for the body."""
    client, peer = socket_pair
    client.on_wait = lambda: None  # a request thread's socket
    client.sendall(HEAD)
    assert _pending(peer) == b"" and client.held == HEAD
    client.sendall(b"{}")
    assert _pending(peer) == HEAD + b"{}" and client.held is None


def test_a_held_head_goes_at_the_end_of_the_request_or_before_a_large_piece(
        socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    client, peer = socket_pair
    client.on_wait = lambda: None
    client.sendall(HEAD)
    client.flush()  # what ThreadWorker.handle_request does when the request ends (a HEAD, an empty body)
    assert _pending(peer) == HEAD
    client.flush()
    assert _pending(peer) == b""
    big = b"x" * (HELD_JOIN_LIMIT + 1)
    client.sendall(HEAD)
    client.sendall(big)
    received = b""
    while len(received) < len(HEAD) + len(big):
        received += peer.recv(1 << 20)
    assert received == HEAD + big


@pytest.mark.parametrize("data", [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 101 Switching\r\n\r\n",
                                  b"HTTP/1.1 200 OK\r\nContent-", b"not a head\r\n\r\n"])
def test_interim_responses_and_other_bytes_go_at_once(socket_pair: tuple[ClientSocket, socket.socket],
                                                    data: bytes) -> None:
    client, peer = socket_pair
    client.on_wait = lambda: None
    client.sendall(data)
    assert _pending(peer) == data and client.held is None


def test_the_event_loop_sends_heads_at_once(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    """Outside a request thread (no on_wait, as the event loop's sockets) nothing is held."""
    client, peer = socket_pair
    client.sendall(HEAD)
    assert _pending(peer) == HEAD


def test_sendfile_sends_the_held_head_first(socket_pair: tuple[ClientSocket, socket.socket], tmp_path: Path) -> None:
    client, peer = socket_pair
    client.on_wait = lambda: None
    body = tmp_path / "blob"
    body.write_bytes(b"{}")
    client.sendall(HEAD)
    with body.open("rb") as file:
        client.sendfile(file)
    assert _pending(peer) == HEAD + b"{}"


def test_a_send_to_a_client_that_does_not_read_says_it_waits(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    """More than the socket buffers hold: on_wait runs, and here starts the reader it waits for."""
    client, peer = socket_pair
    # A bound on a send that would otherwise block forever if on_wait were never called.
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 10, 0))
    data = bytes(range(256)) * 16384  # 4 MiB
    received = bytearray()

    def read_all() -> None:
        while len(received) < len(data):
            received.extend(peer.recv(1 << 20))

    reader = threading.Thread(target=read_all)
    client.on_wait = reader.start
    client.sendall(data)
    reader.join(10)
    assert bytes(received) == data


def test_the_event_loops_non_blocking_calls_do_not_wait(socket_pair: tuple[ClientSocket, socket.socket]) -> None:
    client, _ = socket_pair
    waits: list[None] = []
    client.on_wait = lambda: waits.append(None)
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(1024)
    assert waits == []


# -- Crew: turns, and lending them while waiting on a client ------------------------------------


@pytest.fixture
def crew() -> Iterator[Crew]:
    pool = Crew(turns=1, max_threads=8)
    yield pool
    pool.shutdown(wait=False)


def test_calls_beyond_the_turns_wait_in_line(crew: Crew) -> None:
    release, running = threading.Event(), threading.Event()

    def first() -> str:
        running.set()
        release.wait(10)
        return "first"

    a = crew.submit(first)
    assert running.wait(10)
    b = crew.submit(lambda: "second")
    assert crew.queued == 1 and not b.done()
    release.set()
    assert (a.result(10), b.result(10)) == ("first", "second")
    assert crew.queued == 0


def test_a_call_waiting_on_its_client_lets_the_next_one_run(crew: Crew) -> None:
    """With one turn: the first call lends it and waits; the second runs to the end meanwhile."""
    release = threading.Event()

    def waits_on_client() -> str:
        crew.lend()
        release.wait(10)
        return "slow client done"

    a = crew.submit(waits_on_client)
    b = crew.submit(lambda: "served meanwhile")
    assert b.result(10) == "served meanwhile" and not a.done()
    release.set()
    assert a.result(10) == "slow client done"


def test_a_call_back_from_its_client_runs_without_waiting_for_a_turn(crew: Crew) -> None:
    """No deadlock: the lender holds a lock that the turn holder waits for, and finishes first."""
    lock, release, locked = threading.Lock(), threading.Event(), threading.Event()

    def holds_the_lock() -> str:
        with lock:
            crew.lend()
            locked.set()
            release.wait(10)
        return "lender"

    def needs_the_lock() -> str:
        release.set()  # the lender's client answers while this call holds the only turn
        with lock:
            return "turn holder"

    a = crew.submit(holds_the_lock)
    assert locked.wait(10)
    b = crew.submit(needs_the_lock)
    assert (a.result(10), b.result(10)) == ("lender", "turn holder")


def test_a_call_goes_on_only_while_nobody_waits_for_a_turn(crew: Crew) -> None:
    """``go_on`` with one turn: yes while the queue is empty; no once a call waits for the turn."""
    asked, queued, answers = threading.Event(), threading.Event(), []

    def keeps_serving() -> list[bool]:
        answers.append(crew.go_on())
        asked.set()
        queued.wait(10)
        answers.append(crew.go_on())
        return answers

    a = crew.submit(keeps_serving)
    assert asked.wait(10)
    b = crew.submit(lambda: "next")  # the only turn is a's: b waits in line
    assert crew.queued == 1
    queued.set()
    assert a.result(10) == [True, False] and b.result(10) == "next"


def test_a_call_back_from_its_client_goes_on_with_a_free_turn_taken_back(crew: Crew) -> None:
    """A call that lent its turn may go on only by taking a free turn back: not while another
    call holds the only turn; once it is free, yes, and then the next call waits for it."""
    holding, asked, release, answers = threading.Event(), threading.Event(), threading.Event(), []

    def lender() -> str:
        crew.lend()
        holding.wait(10)  # the holder has the only turn now
        answers.append(crew.go_on())
        asked.set()
        return "lender"

    def holder() -> str:
        holding.set()
        asked.wait(10)
        return "holder"

    a = crew.submit(lender)
    assert crew.submit(holder).result(10) == "holder" and a.result(10) == "lender"
    assert answers == [False]

    def lends_then_goes_on() -> bool:
        crew.lend()  # the turn is free: nobody else is there to take it
        answers.append(crew.go_on())
        asked.set()
        release.wait(10)
        return True

    asked.clear()
    c = crew.submit(lends_then_goes_on)
    assert asked.wait(10) and answers == [False, True]
    d = crew.submit(lambda: "after")
    assert crew.queued == 1  # c took the turn back: d waits for it
    release.set()
    assert c.result(10) and d.result(10) == "after"


def test_lend_outside_a_call_and_errors_in_calls(crew: Crew) -> None:
    crew.lend()  # not in a crew thread: nothing to lend, and no turn gained

    def fails() -> None:
        raise ValueError("in the call")

    with pytest.raises(ValueError, match="in the call"):
        crew.submit(fails).result(10)
    assert crew.submit(lambda: 42).result(10) == 42


def test_no_calls_after_shutdown(crew: Crew) -> None:
    assert crew.submit(lambda: 1).result(10) == 1
    crew.shutdown(wait=False)
    with pytest.raises(RuntimeError):
        crew.submit(lambda: 2)


# -- under real gunicorn ------------------------------------------------------------------------


def _serve(tmp_path: Path, *args: str) -> RegistryServer:
    return RegistryServer(tmp_path / "data", log_path=tmp_path / "registry.log",
                          extra_args=["--workers", "1", *args])


def _closed_by_server(sock: socket.socket) -> bool:
    """Wait (bounded by the socket's timeout) for the server to close; True if it did."""
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """One worker with one thread: whatever holds that thread stops the server."""
    base = tmp_path_factory.mktemp("one-thread")
    server = RegistryServer(base / "data", log_path=base / "registry.log",
                            extra_args=["--workers", "1", "--threads", "1"])
    with server:
        yield server


def test_trickling_heads_hold_no_thread(one_thread: RegistryServer) -> None:
    """Ten clients in the middle of their heads; the only thread still serves everyone else."""
    slow = [connect(one_thread.hostport) for _ in range(10)]
    try:
        for sock in slow:
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n")
        for _ in range(3):
            assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        # Each slow head, completed at last, is served on its own connection.
        for sock in slow:
            sock.sendall(b"\r\n")
            assert read_response(sock).status == 200
    finally:
        for sock in slow:
            sock.close()


def test_a_head_sent_byte_by_byte_between_other_requests(one_thread: RegistryServer) -> None:
    data = request("GET", "/v2/", headers={"X-Padding": "p" * 100})
    with connect(one_thread.hostport) as sock:
        for i in range(len(data)):
            sock.sendall(data[i:i + 1])
            if i % 40 == 0:
                assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        response = read_response(sock)
    assert response.status == 200 and response.body == b"{}"


def test_keepalive_and_pipelined_requests(one_thread: RegistryServer) -> None:
    """Two requests in one send, then a third one's head in two halves on the same connection."""
    with connect(one_thread.hostport) as sock:
        pending = bytearray()
        sock.sendall(request("GET", "/v2/") + request("GET", "/v2/nothing/tags/list"))
        assert read_response(sock, pending=pending).status == 200
        second = read_response(sock, pending=pending)
        assert second.status == 404 and b"NAME_UNKNOWN" in second.body
        third = request("GET", "/v2/")
        sock.sendall(third[:10])
        assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        sock.sendall(third[10:])
        assert read_response(sock, pending=pending).status == 200
        assert not pending


def _chunked(data: bytes, size: int) -> bytes:
    """``data`` in chunks of ``size`` bytes, without the last chunk (RFC 9112 section 7.1)."""
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size]) for i in range(0, len(data), size))


@pytest.mark.parametrize("framing", ["length", "chunked", "drained"])
def test_a_request_pipelined_half_behind_a_body(one_thread: RegistryServer, framing: str) -> None:
    """The first 12 bytes of a GET arrive with the end of a PATCH body, the rest only later.

    The 12 bytes come in the same send as the end of the body, so they are read with it into
    gunicorn's buffer, never left on the socket: ``length``: the loop's first read holds the head,
    the 5000-byte body and them, and the socket reader hands them back (gunicorn_input.py
    ``unreader.unread(rest)``); ``chunked``: gunicorn's chunked reader reads past the last chunk;
    ``drained``: the registry answers 404 BLOB_UPLOAD_UNKNOWN without reading the 40 KB body, and
    gunicorn's drain reads past it. Each way ``ThreadWorker.enqueue_req`` finds half a head in the
    buffer and waits for the rest in the loop (``self._start_head``), so the only thread serves
    another client meanwhile; a thread waiting for the head would hold it.
    """
    location = upload_session(one_thread.hostport, f"worker/pipelined-{framing}")
    nxt = request("GET", "/v2/")
    with connect(one_thread.hostport) as sock:
        pending = bytearray()
        if framing == "length":
            body = b"b" * 5000
            sock.sendall(request("PATCH", location, body) + nxt[:12])
        else:
            body = bytes(range(256)) * 160  # 40 KB: more than the loop's first read of the head
            if framing == "drained":
                location = location.rsplit("/", 1)[0] + "/" + "0" * 32
            sock.sendall(request("PATCH", location, headers={"Transfer-Encoding": "chunked"})
                         + _chunked(body[:-100], 4096))
            # The end of the body and the start of the GET in one send: they arrive together.
            sock.sendall(_chunked(body[-100:], 4096) + b"0\r\n\r\n" + nxt[:12])
        response = read_response(sock, pending=pending)
        if framing == "drained":
            assert response.status == 404 and b"BLOB_UPLOAD_UNKNOWN" in response.body, response
        else:
            assert response.status == 202 and response.headers["range"] == f"0-{len(body) - 1}", response
        assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        sock.sendall(nxt[12:])
        assert read_response(sock, pending=pending).status == 200
        assert not pending


@pytest.mark.parametrize("next_part", ["whole", "half", "end"])
def test_the_next_request_waiting_on_the_socket_after_a_body(one_thread: RegistryServer, next_part: str) -> None:
    """A GET's head (or a part of it, or the end of the connection) sent with the rest of a
    PATCH body, after the server has read the PATCH's head: the body reader takes the body's
    bytes only, so the GET waits on the socket when the PATCH's thread is done.

    ``whole``: that thread sees it whole and serves it at once (``ThreadWorker._next_is_here``);
    ``half``: it hands the half to the event loop, and the only thread serves another client
    before the rest arrives; ``end``: the connection is closed after the PATCH's response.
    """
    location = upload_session(one_thread.hostport, f"worker/next-{next_part}")
    body = b"n" * 3000
    nxt = request("GET", "/v2/")
    with connect(one_thread.hostport) as sock:
        pending = bytearray()
        sock.sendall(request("PATCH", location, headers={"Content-Length": str(len(body))}) + body[:10])
        # Served only after the loop has read the PATCH's head and the 10 bytes behind it.
        assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        sock.sendall(body[10:] + {"whole": nxt, "half": nxt[:12], "end": b""}[next_part])
        if next_part == "end":
            sock.shutdown(socket.SHUT_WR)
        response = read_response(sock, pending=pending)
        assert response.status == 202 and response.headers["range"] == f"0-{len(body) - 1}", response
        if next_part == "half":
            assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
            sock.sendall(nxt[12:])
        if next_part == "end":
            assert _closed_by_server(sock)
        else:
            assert read_response(sock, pending=pending).status == 200
        assert not pending


def test_half_a_next_head_left_by_a_request_thread_has_the_header_timeout(tmp_path: Path) -> None:
    """The part of a kept-alive connection's next head that a request's thread found goes to the
    event loop with the header deadline, not the longer keep-alive timeout."""
    with _serve(tmp_path, "--header-timeout", "1") as server:
        location = upload_session(server.hostport, "worker/next-deadline")
        with connect(server.hostport) as sock:
            sock.sendall(request("PATCH", location, headers={"Content-Length": "100"}) + b"x")
            assert exchange(server.hostport, "GET", "/v2/").status == 200
            sock.sendall(b"x" * 99 + b"GET /v2/ HTTP/1.1\r\n")
            assert read_response(sock).status == 202
            assert _closed_by_server(sock)


def test_closing_connections_do_not_stop_the_worker(one_thread: RegistryServer) -> None:
    """Eight clients that keep their socket open after a ``Connection: close`` response.

    A graceful close waits up to 2 s for the client to close too; gthread waits in its event
    loop, one client after the other, so these eight would keep it from accepting anyone for
    16 s. Here the loop only watches for the clients' ends.
    """
    lingering = [connect(one_thread.hostport) for _ in range(8)]
    try:
        for sock in lingering:
            sock.sendall(request("GET", "/v2/", headers={"Connection": "close"}))
        assert exchange(one_thread.hostport, "GET", "/v2/", timeout=8).status == 200
        for sock in lingering:
            assert read_response(sock).status == 200
    finally:
        for sock in lingering:
            sock.close()


def test_slow_uploads_do_not_hold_the_turn(one_thread: RegistryServer) -> None:
    """Three PATCHes stopped mid-body, with one turn: others are served; then the three finish."""
    locations = [upload_session(one_thread.hostport, f"worker/slow-{i}") for i in range(3)]
    body = b"z" * 3000
    slow = [connect(one_thread.hostport) for _ in locations]
    try:
        for sock, location in zip(slow, locations):
            sock.sendall(request("PATCH", location, headers={"Content-Length": str(len(body))}) + body[:10])
        for _ in range(3):
            assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        for sock in slow:
            sock.sendall(body[10:])
            response = read_response(sock)
            assert response.status == 202 and response.headers["range"] == f"0-{len(body) - 1}"
    finally:
        for sock in slow:
            sock.close()


def test_a_client_that_reads_slowly_does_not_hold_the_turn(one_thread: RegistryServer) -> None:
    """A blob GET whose client reads nothing yet, with one turn: others are served meanwhile."""
    blob = bytes(range(256)) * 32768  # 8 MiB: more than the socket buffers hold
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    location = upload_session(one_thread.hostport, "worker/download")
    assert exchange(one_thread.hostport, "PUT", f"{location}?digest={digest}", blob).status == 201
    host, port = one_thread.hostport.rsplit(":", 1)
    reader = socket.socket()
    reader.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reader.settimeout(30)
    reader.connect((host, int(port)))
    with reader:
        reader.sendall(request("GET", f"/v2/worker/download/blobs/{digest}"))
        for _ in range(3):
            assert exchange(one_thread.hostport, "GET", "/v2/").status == 200
        response = read_response(reader)
    assert response.status == 200 and hashlib.sha256(response.body).hexdigest() == digest[7:]


def test_heads_and_idle_connections_are_closed_at_the_header_timeout(tmp_path: Path) -> None:
    with _serve(tmp_path, "--header-timeout", "1") as server:
        with connect(server.hostport) as idle, connect(server.hostport) as partial:
            partial.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
            assert _closed_by_server(partial)
            assert _closed_by_server(idle)
        # A kept-alive connection's next head has its own deadline, from its first byte.
        with connect(server.hostport) as sock:
            sock.sendall(request("GET", "/v2/"))
            assert read_response(sock).status == 200
            sock.sendall(b"GET /v2/ HTTP/1.1\r\n")
            assert _closed_by_server(sock)


def test_at_the_connection_cap_the_oldest_unfinished_heads_make_room(tmp_path: Path) -> None:
    with _serve(tmp_path, "--max-connections", "4", "--header-timeout", "600") as server:
        idle = [connect(server.hostport) for _ in range(4)]
        try:
            idle[0].sendall(b"GET /v2/ HTTP/1.1\r\n")
            assert exchange(server.hostport, "GET", "/v2/").status == 200
            assert _closed_by_server(idle[0])
        finally:
            for sock in idle:
                sock.close()


def test_a_stopped_body_fails_with_blob_upload_invalid(tmp_path: Path) -> None:
    """A PATCH whose client stops sending: 400 BLOB_UPLOAD_INVALID (OCI spec, "Pushing a blob
    in chunks") after the body timeout, the connection closed, no traceback in the log."""
    with _serve(tmp_path, "--body-timeout", "1") as server:
        location = upload_session(server.hostport, "worker/stopped")
        with connect(server.hostport) as sock:
            sock.sendall(request("PATCH", location, headers={"Content-Length": "1000"}) + b"x" * 10)
            response = read_response(sock)
            assert response.status == 400 and b"BLOB_UPLOAD_INVALID" in response.body
            assert _closed_by_server(sock)
        with connect(server.hostport) as sock:
            chunked = request("PATCH", location, headers={"Transfer-Encoding": "chunked"})
            sock.sendall(chunked + b"400\r\n" + b"y" * 10)
            response = read_response(sock)
            assert response.status == 400 and b"BLOB_UPLOAD_INVALID" in response.body
        assert exchange(server.hostport, "GET", "/v2/").status == 200
    assert "Traceback" not in server.log_text()


def test_a_slow_but_steady_body_completes(tmp_path: Path) -> None:
    """Bytes every 0.3 s for longer than the body timeout: the upload completes (202, then 201)."""
    blob = bytes(range(256)) * 4
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with _serve(tmp_path, "--body-timeout", "1.5") as server:
        location = upload_session(server.hostport, "worker/steady")
        with connect(server.hostport) as sock:
            sock.sendall(request("PATCH", location, headers={"Content-Length": str(len(blob))}))
            for i in range(0, len(blob), 128):  # 8 pieces: 2.4 s in all
                sock.sendall(blob[i:i + 128])
                time.sleep(0.3)
            response = read_response(sock)
        assert response.status == 202 and response.headers["range"] == f"0-{len(blob) - 1}"
        closed = exchange(server.hostport, "PUT", f"{location}?digest={digest}")
        assert closed.status == 201


def test_out_of_file_descriptors_the_oldest_unfinished_heads_make_room(tmp_path: Path) -> None:
    """The process may hold 100 files: 120 idle connections run it out before the connection cap;
    the oldest idle ones are closed so that a request is still served."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        pytest.skip("prlimit (util-linux) is not installed")
    command = [prlimit, "--nofile=100:100", sys.executable, "-m", "docker_registry_wsgi", "serve"]
    with RegistryServer(tmp_path / "data", log_path=tmp_path / "registry.log", command=command,
                        extra_args=["--workers", "1", "--header-timeout", "600"]) as server:
        idle = [connect(server.hostport) for _ in range(120)]
        try:
            assert exchange(server.hostport, "GET", "/v2/").status == 200
            assert _closed_by_server(idle[0])
        finally:
            for sock in idle:
                sock.close()

