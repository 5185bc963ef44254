"""Request bodies under gunicorn, received straight from the socket.

gunicorn's ``Body`` → ``LengthReader``/``ChunkedReader`` → ``SocketUnreader`` stack copies every
received MiB about four times (``BytesIO`` writes, ``getvalue``, slices); profiling a 512 MiB
push showed more time there than in hashing the bytes. For a body of known length this reader
takes what gunicorn already buffered, then ``recv``\\ s the rest itself, one copy per chunk. A
chunked body (how docker, containerd and skopeo stream a layer) is decoded here from large
receives, its payload joined into pieces of up to ``chunk_size``: two copies. Either way gunicorn's
own bookkeeping stays right (the reader's remaining length or finished parser, the trailers, the
bytes after the body handed back, the body's ``failed`` flag), so keep-alive and the drain after
the response work as before. Anything it does not recognise exactly gets ``None``, and the
caller uses the portable WSGI stream.
"""

from __future__ import annotations

import inspect
import io
import socket
import ssl
from typing import Any, Iterator, Mapping

__all__ = ["socket_body", "chunk_size", "CHUNKED_READ"]

#: What a receive asks for at least while a chunked body is decoded.
CHUNKED_READ = 64 << 10
_HEX = frozenset(b"0123456789abcdefABCDEF")


def socket_body(environ: Mapping[str, Any], chunk_size: int, *,
                read_size: int = CHUNKED_READ) -> Iterator[bytes] | None:
    """The body of a gunicorn request (``Content-Length`` or chunked), read from the socket;
    else ``None``."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    if (
        type(body).__module__ != "gunicorn.http.body"
        or type(body).__name__ != "Body"
        or not isinstance(getattr(body, "buf", None), io.BytesIO)
    ):
        return None
    if type(reader).__name__ == "LengthReader":
        sock = getattr(unreader, "sock", None)
        if (
            not isinstance(getattr(reader, "length", None), int)
            or not hasattr(unreader, "take_buffered")
            or not hasattr(unreader, "unread")
            or not isinstance(sock, socket.socket)
        ):
            return None
        return _receive(body, reader, unreader, sock, chunk_size)
    if type(reader).__name__ == "ChunkedReader":
        return _chunked(body, reader, chunk_size, read_size)
    return None


def _chunked(body: Any, reader: Any, chunk_size: int, read_size: int) -> Iterator[bytes] | None:
    """A chunked body's decoder, if gunicorn's reader has not started (``None`` otherwise)."""
    parser = getattr(reader, "parser", None)
    unreader = getattr(getattr(reader, "req", None), "unreader", None)  # the one the parser reads
    sock = getattr(unreader, "sock", None)
    if (
        not inspect.isgenerator(parser)
        or inspect.getgeneratorstate(parser) != inspect.GEN_CREATED
        or body.buf.tell() != 0
        or not isinstance(getattr(reader, "buf", None), io.BytesIO)
        or reader.buf.tell() != 0
        or not callable(getattr(reader, "parse_trailers", None))
        or not isinstance(getattr(reader, "limit_chunk_size_line", None), int)
        or not hasattr(unreader, "take_buffered")
        or not hasattr(unreader, "unread")
        or not isinstance(sock, socket.socket)
    ):
        return None
    return _decode_chunked(body, reader, unreader, sock, chunk_size, read_size)


def chunk_size(line: bytes) -> int:
    """The size a chunk-size line (without its CRLF) announces, checked as gunicorn checks it
    (RFC 9112 section 7.1): hex digits, then optional extensions; else gunicorn's errors."""
    from gunicorn.http.body import CHUNK_EXT_RE
    from gunicorn.http.errors import InvalidChunkExtension, InvalidChunkSize

    size, *extension = line.split(b";", 1)
    if extension:
        if b"\r" in extension[0]:
            raise InvalidChunkExtension("bare CR not allowed")
        size = size.rstrip(b" \t")
    if not size or not _HEX.issuperset(size):
        raise InvalidChunkSize(size)
    if extension and not CHUNK_EXT_RE.fullmatch(b";" + extension[0]):
        raise InvalidChunkExtension("invalid chunk extension")
    return int(size, 16)


def _decode_chunked(body: Any, reader: Any, unreader: Any, sock: socket.socket,
                    chunk_size_: int, read_size: int) -> Iterator[bytes]:
    """Decode a chunked body from what gunicorn buffered and then from the socket; the trailer
    section, and the bytes after it, go to gunicorn's reader as its own parser would leave them."""
    from gunicorn.http.errors import ChunkMissingTerminator, InvalidChunkSize, NoMoreData

    reader.parser = None  # from here on, this decoder reads the body; gunicorn's reader is done
    limit = reader.limit_chunk_size_line
    buf, pos = unreader.take_buffered(), 0
    pieces: list[memoryview] = []
    held = 0

    def receive(size: int) -> bytes:
        data = sock.recv(max(size, read_size))
        if not data:
            raise NoMoreData(b"")
        return data

    try:
        while True:
            end = buf.find(b"\r\n", pos)
            while end < 0:
                if len(buf) - pos > limit:
                    raise InvalidChunkSize(b"line over %d bytes with no terminator" % limit)
                searched = max(0, len(buf) - pos - 1)
                buf, pos = buf[pos:] + receive(chunk_size_), 0
                end = buf.find(b"\r\n", searched)
            size = chunk_size(buf[pos:end])
            pos = end + 2
            if size == 0:
                if pieces:
                    yield b"".join(pieces)
                    pieces, held = [], 0
                reader.parse_trailers(unreader, buf[pos:])  # gives back what follows
                return
            view = memoryview(buf)
            while size:
                if pos == len(buf):
                    buf, pos = receive(min(size + 2, chunk_size_ - held)), 0
                    view = memoryview(buf)
                take = min(size, len(buf) - pos, chunk_size_ - held)
                pieces.append(view[pos:pos + take])
                pos += take
                size -= take
                held += take
                if held == chunk_size_:
                    yield b"".join(pieces)
                    pieces, held = [], 0
            while len(buf) - pos < 2:
                buf, pos = buf[pos:] + receive(2), 0
            if buf[pos:pos + 2] != b"\r\n":
                raise ChunkMissingTerminator(buf[pos:pos + 2])
            pos += 2
    except BaseException:
        body.failed = True  # where the next request starts is unknown: gunicorn must close
        raise


def _receive(body: Any, reader: Any, unreader: Any, sock: socket.socket, chunk_size: int) -> Iterator[bytes]:
    # What the application's earlier reads left in the Body (already counted off the reader).
    held = body.buf.getvalue()
    if held:
        body.buf = io.BytesIO()
        yield held
    # What gunicorn read ahead from the socket: the start of this body, maybe a pipelined request.
    ahead = unreader.take_buffered()
    if ahead:
        mine, rest = ahead[: reader.length], ahead[reader.length :]
        if rest:
            unreader.unread(rest)
        reader.length -= len(mine)
        if mine:
            yield mine
    # A plain socket can wait for whole chunks in one call; TLS sockets take no flags.
    flags = 0 if isinstance(sock, ssl.SSLSocket) else socket.MSG_WAITALL
    while reader.length > 0:
        try:
            data = sock.recv(min(chunk_size, reader.length), flags)
        except OSError:
            body.failed = True  # the connection's position is unknown: gunicorn must close it
            raise ConnectionError("client connection failed during the request body") from None
        if not data:
            body.failed = True
            raise ConnectionError("client closed the connection before the end of the body")
        reader.length -= len(data)
        yield data
