"""Request bodies under a real gunicorn (the standalone server), sent on raw sockets.

The fast path must keep gunicorn's connection bookkeeping right: a keep-alive connection serves
the next request after a body read from the socket, a request pipelined behind a body is not
eaten, and a client that stops mid-body costs only its own connection.

Bodies gunicorn's parser refuses while the registry reads them (a malformed chunk size, a chunk
without its CRLF, a body cut off by the client) are the client's error on every endpoint that
reads one: 400 BLOB_UPLOAD_INVALID for PATCH, PUT and POST ``?digest=``, 400 MANIFEST_INVALID for
the manifest PUT (oci-distribution-spec.md "Error Codes"), with the session left at its offset
("Pushing a blob in chunks") and no traceback in the server's log. RFC 9112 section 7.1 (chunked
framing), section 6.1 (transfer codings other than chunked: 501).
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any, Iterator

import pytest
from gunicorn.config import Config
from gunicorn.http.errors import InvalidChunkExtension, InvalidChunkSize
from gunicorn.http.parser import RequestParser
from hypothesis import given, strategies as st

from docker_registry_wsgi.gunicorn_input import chunk_size, socket_body

from tests.support.raw_http import Response, connect, exchange, request, responses, start_session
from tests.support.servers import RegistryServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("gunicorn-input")
    with RegistryServer(root / "data", extra_args=["--workers", "1"], log_path=root / "server.log") as srv:
        yield srv


@pytest.fixture
def clean_log(server: RegistryServer) -> Iterator[None]:
    """The test's part of the server log must show no traceback and no gunicorn request error."""
    start = len(server.log_text())
    yield
    added = server.log_text()[start:]
    assert "Traceback" not in added and "Error handling request" not in added, added


def test_keepalive_connection_serves_requests_after_a_body(server: RegistryServer) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB: several recv() calls
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with connect(server.hostport) as sock:
        location = start_session(sock, "gi/keepalive")
        sock.sendall(request("PUT", f"{location}?digest={digest}", blob))
        [(status, _, _)] = responses(sock, 1)
        assert status == 201
        sock.sendall(request("HEAD", f"/v2/gi/keepalive/blobs/{digest}"))
        [(status, headers, _)] = responses(sock, 1, head=True)
        assert status == 200 and headers["docker-content-digest"] == digest


@pytest.mark.parametrize("size", [10_000, 2 << 20])
def test_pipelined_request_behind_a_body_is_served(server: RegistryServer, size: int) -> None:
    """A GET sent in the same send as a PATCH body is answered after it, and the body is exact.

    10 000 bytes: the worker's first read of the head (16 KiB) holds the body and the GET, so the
    socket reader takes the GET out of gunicorn's buffer with the body and must hand it back
    (gunicorn_input.py ``unreader.unread(rest)``). 2 MiB: the end of the body is received from
    the socket (the ``recv`` loop), which must stop at the body's end and leave the GET there.
    """
    blob = bytes(range(256)) * (size // 256)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with connect(server.hostport) as sock:
        location = start_session(sock, f"gi/pipelined-{size}")
        sock.sendall(request("PATCH", location, blob) + request("GET", "/v2/"))
        (patch_status, patch_headers, _), (base_status, _, base_body) = responses(sock, 2)
        assert patch_status == 202 and patch_headers["range"] == f"0-{len(blob) - 1}"
        assert base_status == 200 and base_body == b"{}"
        sock.sendall(request("PUT", f"{location}?digest={digest}"))
        [(status, headers, _)] = responses(sock, 1)
        assert status == 201 and headers["docker-content-digest"] == digest


def test_client_gone_mid_body_leaves_the_session_usable(server: RegistryServer, tmp_path: Path) -> None:
    with connect(server.hostport) as sock:
        location = start_session(sock, "gi/dropped")
    with connect(server.hostport) as sock:
        head = f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        sock.sendall(head.encode() + b"x" * 1000)
    # The session is still at offset 0, and the server still answers.
    with connect(server.hostport) as sock:
        sock.sendall(request("GET", location))
        [(status, headers, _)] = responses(sock, 1)
        assert status == 204 and headers["range"] == "0-0"


# -- bodies gunicorn's parser refuses while the registry reads them ----------------------------------

#: Chunked bodies that break the framing of RFC 9112 section 7.1, and whether the client then
#: half-closes its side (a cut-off body is only noticed at end of stream).
BROKEN_CHUNKED = {
    "bad-chunk-size": (b"5\r\nhello\r\nzz\r\nworld\r\n0\r\n\r\n", False),  # InvalidChunkSize
    "no-crlf-after-data": (b"5\r\nhello\r\n5\r\nworldXX0\r\n\r\n", False),  # ChunkMissingTerminator
    "cut-in-chunk-data": (b"5\r\nhello\r\na\r\nworl", True),  # NoMoreData
    "cut-before-last-chunk": (b"5\r\nhello\r\n", True),  # NoMoreData
    "cut-in-trailer": (b"5\r\nhello\r\n0\r\n", True),  # ChunkMissingTerminator
}
ENDPOINTS = ["PATCH", "PUT", "POST", "manifest PUT"]
#: What the client had sent before the broken request: the session's offset.
SENT = bytes(range(100))
REST = b"rest of the blob"


def _broken_request(server: RegistryServer, endpoint: str, repo: str, framing: str,
                    body: bytes, half_close: bool) -> tuple[str | None, Response]:
    """Open a session holding :data:`SENT` if the endpoint needs one, send the broken request."""
    location = None
    if endpoint in ("PATCH", "PUT"):
        with connect(server.hostport) as sock:
            location = start_session(sock, repo)
            sock.sendall(request("PATCH", location, SENT))
            assert responses(sock, 1)[0][0] == 202
    target = {
        "PATCH": location,
        "PUT": f"{location}?digest=sha256:{hashlib.sha256(SENT + b'hello').hexdigest()}",
        "POST": f"/v2/{repo}/blobs/uploads/?digest=sha256:{hashlib.sha256(b'hello').hexdigest()}",
        "manifest PUT": f"/v2/{repo}/manifests/v1",
    }[endpoint]
    method = "PUT" if endpoint == "manifest PUT" else endpoint
    extra = f"Content-Type: application/vnd.oci.image.manifest.v1+json\r\n" if endpoint == "manifest PUT" else ""
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}{framing}\r\n"
    return location, exchange(server.hostport, head.encode() + body, half_close)


def _assert_refused_and_nothing_changed(server: RegistryServer, endpoint: str, repo: str, location: str | None,
                                        response: Response) -> None:
    status, _, body = response
    code = "MANIFEST_INVALID" if endpoint == "manifest PUT" else "BLOB_UPLOAD_INVALID"
    assert status == 400, body
    [error] = json.loads(body)["errors"]
    assert error["code"] == code, error
    with connect(server.hostport) as sock:
        if location is not None:
            # The session is where it was, and goes on from there.
            sock.sendall(request("GET", location))
            [(status, headers, _)] = responses(sock, 1)
            assert status == 204 and headers["range"] == f"0-{len(SENT) - 1}"
            sock.sendall(request("PATCH", location, REST))
            [(status, headers, _)] = responses(sock, 1)
            assert status == 202 and headers["range"] == f"0-{len(SENT + REST) - 1}"
        elif endpoint == "POST":
            sock.sendall(request("HEAD", f"/v2/{repo}/blobs/sha256:{hashlib.sha256(b'hello').hexdigest()}"))
            assert responses(sock, 1, head=True)[0][0] == 404
        else:
            sock.sendall(request("GET", f"/v2/{repo}/manifests/v1"))
            assert responses(sock, 1)[0][0] == 404


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("case", sorted(BROKEN_CHUNKED))
def test_broken_chunked_body_is_a_client_error(server: RegistryServer, clean_log: None,
                                               endpoint: str, case: str) -> None:
    """RFC 9112 7.1: a chunked body gunicorn cannot parse is the client's: 400, nothing changed."""
    body, half_close = BROKEN_CHUNKED[case]
    repo = f"gi/broken/{case}/{endpoint.replace(' ', '-').lower()}"
    location, response = _broken_request(server, endpoint, repo, "Transfer-Encoding: chunked\r\n",
                                         body, half_close)
    _assert_refused_and_nothing_changed(server, endpoint, repo, location, response)


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_body_cut_before_its_content_length_is_a_client_error(server: RegistryServer, clean_log: None,
                                                              endpoint: str) -> None:
    """RFC 9112 6.3: a body that ends (the client half-closes) before its Content-Length: 400."""
    repo = f"gi/cut/{endpoint.replace(' ', '-').lower()}"
    location, response = _broken_request(server, endpoint, repo, "Content-Length: 1000\r\n",
                                         b'{"schemaVersion": 2, "x', True)
    _assert_refused_and_nothing_changed(server, endpoint, repo, location, response)


def test_well_formed_chunked_patch_with_extension_and_trailer(server: RegistryServer, clean_log: None) -> None:
    """skopeo and docker PATCH chunked: RFC 9112 7.1 chunk extensions and a trailer section are
    framing, and only the chunk data is stored."""
    with connect(server.hostport) as sock:
        location = start_session(sock, "gi/chunked-ok")
        body = b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        sock.sendall(f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode() + body)
        [(status, headers, _)] = responses(sock, 1)
        assert status == 202 and headers["range"] == "0-10"
        digest = "sha256:" + hashlib.sha256(b"hello world").hexdigest()
        sock.sendall(request("PUT", f"{location}?digest={digest}"))
        [(status, headers, _)] = responses(sock, 1)
        assert status == 201 and headers["docker-content-digest"] == digest


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_gzip_transfer_coding_is_501(server: RegistryServer, clean_log: None, endpoint: str) -> None:
    """RFC 9112 6.1: gunicorn decodes the chunking of ``gzip, chunked`` but not the gzip: the
    registry answers 501 UNSUPPORTED instead of storing gzipped bytes; the session is unchanged."""
    repo = f"gi/gzip-te/{endpoint.replace(' ', '-').lower()}"
    location, (status, _, body) = _broken_request(
        server, endpoint, repo, "Transfer-Encoding: gzip, chunked\r\n", b"4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n", False)
    assert status == 501, body
    assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
    if location is not None:
        with connect(server.hostport) as sock:
            sock.sendall(request("GET", location))
            assert responses(sock, 1)[0][1]["range"] == f"0-{len(SENT) - 1}"


def test_content_coded_manifest_is_415(server: RegistryServer, clean_log: None) -> None:
    """RFC 9110 15.5.16: a gzip Content-Encoding on a manifest PUT is 415 UNSUPPORTED."""
    head = ("PUT /v2/gi/gzip-ce/manifests/v1 HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 4\r\n\r\n")
    status, headers, body = exchange(server.hostport, head.encode() + b"\x1f\x8b\x08\x00")
    assert status == 415 and headers["accept-encoding"] == "identity", body
    assert json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize("chunk_sizes", [[1, 4093, 2], [7, 1 << 20, 3], [65536], [(1 << 20) + 1, 5]], ids=str)
def test_chunked_body_in_any_chunking_is_stored_exactly_and_the_next_request_served(
        server: RegistryServer, clean_log: None, chunk_sizes: list[int]) -> None:
    """A 3 MiB chunked PATCH (chunk sizes cycling through ``chunk_sizes``): the stored bytes are
    exactly the chunks' data, and a GET pipelined behind the last chunk is answered after it."""
    blob = hashlib.sha256(str(chunk_sizes).encode()).digest() * (3 * (1 << 20) // 32)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    framed, position, turn = bytearray(), 0, 0
    while position < len(blob):
        piece = blob[position:position + chunk_sizes[turn % len(chunk_sizes)]]
        framed += b"%x\r\n" % len(piece) + piece + b"\r\n"
        position, turn = position + len(piece), turn + 1
    framed += b"0\r\n\r\n"
    with connect(server.hostport) as sock:
        location = start_session(sock, "gi/chunkings")
        head = f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        sock.sendall(head + bytes(framed) + request("GET", "/v2/"))
        (status, headers, _), (base_status, _, base_body) = responses(sock, 2)
        assert status == 202 and headers["range"] == f"0-{len(blob) - 1}"
        assert base_status == 200 and base_body == b"{}"
        sock.sendall(request("PUT", f"{location}?digest={digest}"))
        [(status, headers, _)] = responses(sock, 1)
        assert status == 201 and headers["docker-content-digest"] == digest


# -- chunked bodies decoded from the socket, against gunicorn's own reader ------------------------

_HEAD = b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
_NEXT = b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"


def _gunicorn_request(data: bytes) -> tuple[Any, Any, socket.socket]:
    """gunicorn's parser over a socket that holds ``_HEAD + data`` and then ends; its request."""
    ours, peer = socket.socketpair()
    peer.sendall(_HEAD + data)
    peer.close()
    parser = RequestParser(Config(), ours, ("127.0.0.1", 40000))
    return parser, next(parser), ours


def _rest(parser: Any, sock: socket.socket) -> bytes:
    """What is left for the next request: gunicorn's buffer, then the socket."""
    rest = parser.unreader.take_buffered()
    while data := sock.recv(65536):
        rest += data
    return rest


def _read_by_gunicorn(data: bytes, size: int) -> tuple[object, ...]:
    parser, req, sock = _gunicorn_request(data)
    with sock:
        try:
            body = b"".join(iter(lambda: req.body.read(size), b""))
        except Exception:
            return ("refused",)
        return body, req.trailers, _rest(parser, sock)


def _read_from_socket(data: bytes, size: int, read_size: int) -> tuple[object, ...]:
    parser, req, sock = _gunicorn_request(data)
    with sock:
        pieces = socket_body({"wsgi.input": req.body}, size, read_size=read_size)
        assert pieces is not None
        received = []
        try:
            for piece in pieces:
                assert 0 < len(piece) <= size
                received.append(piece)
        except Exception:
            assert req.body.failed is True  # gunicorn closes the connection
            return ("refused",)
        assert req.body.read(10) == b""  # gunicorn's reader sees the body ended
        return b"".join(received), req.trailers, _rest(parser, sock)


_EXTENSIONS = st.sampled_from([b"", b";a", b";a=b", b' ; name="q v"', b";a=b;c", b";=", b";a b", b';a="\r"'])


@st.composite
def _chunked_bodies(draw: st.DrawFn) -> bytes:
    """A chunked body (sizes in either case, extensions, maybe trailers), then the next request;
    sometimes with one byte changed or cut short, so that both readers must refuse it."""
    out = bytearray()
    for payload in draw(st.lists(st.binary(min_size=1, max_size=40), max_size=6)):
        size = b"%x" % len(payload)
        out += (size.upper() if draw(st.booleans()) else size) + draw(_EXTENSIONS) + b"\r\n" + payload + b"\r\n"
    out += b"0" + draw(_EXTENSIONS) + b"\r\n"
    out += draw(st.sampled_from([b"", b"X-Trailer: 1\r\n", b"A: b\r\nC: d\r\n"])) + b"\r\n" + _NEXT
    change = draw(st.sampled_from(["none", "byte", "framing", "cut"]))
    if change == "byte":
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    elif change == "framing":  # a CR or LF of the framing, or the byte before one
        marks = [i for i, byte in enumerate(out) if byte in b"\r\n"]
        index = draw(st.sampled_from(marks)) - draw(st.integers(0, 1))
        out[max(0, index)] = draw(st.sampled_from(b"\r\nX0;"))
    elif change == "cut":
        del out[draw(st.integers(0, len(out) - 1)):]
    return bytes(out)


@given(_chunked_bodies(), st.integers(1, 50), st.integers(1, 20))
def test_a_chunked_body_decoded_from_the_socket_is_what_gunicorn_reads(data: bytes, size: int, read_size: int) -> None:
    """RFC 9112 section 7.1: the same bytes, trailers and refusals as gunicorn's ChunkedReader,
    and the same bytes left for the next request, whatever the receive and piece sizes."""
    assert _read_from_socket(data, size, read_size) == _read_by_gunicorn(data, size)


@pytest.mark.parametrize("data", [
    b"5\r\nhelloX\r\n0\r\n\r\n",      # a payload longer than its size
    b"5\r\nhell\r\n0\r\n\r\n",        # shorter
    b"5\r\nhello\n0\r\n\r\n",          # LF alone after the payload
    b"5\nhello\r\n0\r\n\r\n",          # LF alone after the size
    b"5\r\nhello\r\n0\r\nA: b\r\n",    # trailers without their empty line, then the end
    b"5\r\nhello\r\n",                  # no last chunk
    b"1" * 9000 + b"\r\n",                # a size line past gunicorn's limit
    b"5;a\rb\r\nhello\r\n0\r\n\r\n",     # CR inside an extension
])
def test_malformed_chunked_bodies_are_refused_by_both(data: bytes) -> None:
    assert _read_from_socket(data, 4, 3) == _read_by_gunicorn(data, 4) == ("refused",)


def test_a_chunked_body_already_started_by_gunicorn_is_left_to_it() -> None:
    parser, req, sock = _gunicorn_request(b"5\r\nhello\r\n0\r\n\r\n")
    with sock:
        assert req.body.read(2) == b"he"
        assert socket_body({"wsgi.input": req.body}, 1 << 20) is None
        assert req.body.read(10) == b"llo"


def test_a_chunked_body_abandoned_midway_fails_the_connection() -> None:
    """The consumer stopped (a storage error): gunicorn must not take the rest for the next request."""
    parser, req, sock = _gunicorn_request(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    with sock:
        pieces = socket_body({"wsgi.input": req.body}, 5, read_size=8)
        assert pieces is not None and next(pieces) == b"hello"
        pieces.close()
        assert req.body.failed is True


@pytest.mark.parametrize("line, size", [(b"0", 0), (b"1f", 31), (b"FF;a=b", 255), (b"a \t;x", 10)])
def test_chunk_size_lines(line: bytes, size: int) -> None:
    assert chunk_size(line) == size


@pytest.mark.parametrize("line", [b"", b"g", b"-1", b"0x10", b"1 ", b" 1", b"1;", b"1;a\rb", b"1\n"])
def test_malformed_chunk_size_lines_are_refused(line: bytes) -> None:
    with pytest.raises((InvalidChunkSize, InvalidChunkExtension)):
        chunk_size(line)
