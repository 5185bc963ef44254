"""Request bodies under gunicorn, received straight from the socket.

gunicorn's ``Body`` → ``LengthReader`` → ``SocketUnreader`` stack copies every received MiB
about four times (``BytesIO`` writes, ``getvalue``, slices); profiling a 512 MiB push showed more
time there than in hashing the bytes. For a body of known length this reader takes what gunicorn
already buffered, then ``recv``\\ s the rest itself, one copy per chunk, and keeps gunicorn's own
bookkeeping right (the reader's remaining length, the body's ``failed`` flag), so keep-alive and
the drain after the response work as before. Anything it does not recognise exactly gets
``None``, and the caller uses the portable WSGI stream.
"""

from __future__ import annotations

import io
import socket
import ssl
from typing import Any, Iterator, Mapping

__all__ = ["socket_body"]


def socket_body(environ: Mapping[str, Any], chunk_size: int) -> Iterator[bytes] | None:
    """The body of a gunicorn request with ``Content-Length``, read from the socket; else ``None``."""
    body = environ.get("wsgi.input")
    reader = getattr(body, "reader", None)
    unreader = getattr(reader, "unreader", None)
    sock = getattr(unreader, "sock", None)
    if (
        type(body).__module__ != "gunicorn.http.body"
        or type(body).__name__ != "Body"
        or type(reader).__name__ != "LengthReader"
        or not isinstance(getattr(reader, "length", None), int)
        or not isinstance(getattr(body, "buf", None), io.BytesIO)
        or not hasattr(unreader, "take_buffered")
        or not hasattr(unreader, "unread")
        or not isinstance(sock, socket.socket)
    ):
        return None
    return _receive(body, reader, unreader, sock, chunk_size)


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
