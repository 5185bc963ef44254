"""Request and response bodies in bounded pieces: nothing here ever holds a whole blob."""

from __future__ import annotations

from typing import Iterator

from werkzeug.exceptions import ClientDisconnected
from werkzeug.wrappers import Request

from .errors import BlobUploadInvalid, SizeInvalid
from .gunicorn_input import socket_body
from .storage.base import BlobReader

__all__ = ["CHUNK_SIZE", "iter_body", "read_small_body", "BoundedReader"]

#: Large reads keep the per-chunk overhead (hashing, syscalls) small; memory stays bounded by it.
CHUNK_SIZE = 1 << 20


def iter_body(request: Request, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """The request body in pieces of at most ``chunk_size``.

    Honours ``Content-Length`` and, for ``Transfer-Encoding: chunked`` bodies, the server's
    ``wsgi.input_terminated`` (werkzeug's ``request.stream`` does both); under gunicorn a body of
    known length is received from the socket directly (:mod:`.gunicorn_input`). A body that ends
    before its declared length is a client error, not a server one.
    """
    fast = socket_body(request.environ, chunk_size)
    try:
        if fast is not None:
            yield from fast
            return
        read = request.stream.read
        while chunk := read(chunk_size):
            yield chunk
    except (ClientDisconnected, ConnectionError):
        raise BlobUploadInvalid(message="request body ended before its Content-Length") from None


def has_body(request: Request) -> bool:
    """Whether the request says it carries a body (a length above zero, or chunked)."""
    if request.content_length:
        return True
    return "chunked" in request.headers.get("Transfer-Encoding", "").lower()


def read_small_body(request: Request, limit: int, error: type[Exception] = SizeInvalid) -> bytes:
    """Read a body that must be at most ``limit`` bytes (a manifest); raise ``error`` if larger."""
    if request.content_length is not None and request.content_length > limit:
        raise error({"limit": limit, "size": request.content_length})
    parts, total = [], 0
    for chunk in iter_body(request, min(CHUNK_SIZE, limit + 1)):
        total += len(chunk)
        if total > limit:
            raise error({"limit": limit})
        parts.append(chunk)
    return b"".join(parts)


class BoundedReader:
    """A reader that yields at most ``length`` bytes of ``reader``, for range responses.

    It keeps ``fileno()`` so a server's ``wsgi.file_wrapper`` can still ``sendfile`` the file from
    its current position, bounded by the response's ``Content-Length``.
    """

    def __init__(self, reader: BlobReader, length: int) -> None:
        self._reader = reader
        self._left = length
        if hasattr(reader, "fileno"):
            self.fileno = reader.fileno  # type: ignore[attr-defined]
            self.tell = reader.tell  # type: ignore[attr-defined]

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._reader.read(size)
        self._left -= len(data)
        return data

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.read(CHUNK_SIZE):
            yield chunk

    def close(self) -> None:
        self._reader.close()
