"""Request and response bodies in bounded pieces: nothing here ever holds a whole blob."""

from __future__ import annotations

from typing import Callable, Generator, Iterator

from werkzeug.wrappers import Request

from .errors import (
    BlobUploadInvalid,
    ContentCodingUnsupported,
    LengthRequired,
    RegistryError,
    SizeInvalid,
    TransferCodingUnsupported,
)
from .gunicorn_input import socket_body
from .storage.base import BlobReader

__all__ = [
    "BODY_BYTES_KEY",
    "CHUNK_SIZE",
    "check_framing",
    "has_body",
    "iter_body",
    "read_small_body",
    "BoundedReader",
]

#: Large reads keep the per-chunk overhead (hashing, syscalls) small; memory stays bounded by it.
CHUNK_SIZE = 1 << 20

#: The environ key where :func:`iter_body` counts the body bytes read so far (for metrics: a
#: chunked body has no length to read off, and wrapping ``wsgi.input`` to count it would hide
#: gunicorn's socket from :mod:`.gunicorn_input`).
BODY_BYTES_KEY = "docker_registry_wsgi.body_bytes"

_UNREADABLE = "the request body could not be read: it ended early or its chunked framing is malformed"


def _codings(header: str | None) -> list[str]:
    """The codings of a ``Transfer-Encoding``/``Content-Encoding`` value, lower case (RFC 9110 8.4)."""
    return [c.strip(" \t").lower() for c in (header or "").split(",") if c.strip(" \t")]


def check_framing(request: Request) -> None:
    """Refuse a body this registry would read wrongly, before reading any of it.

    ``Transfer-Encoding`` must be ``chunked`` alone: any other coding (``gzip, chunked``) would
    reach the application still coded, so it is 501 (RFC 9112 section 6.1). A chunked body is
    read only from a server that decodes it and says so with ``wsgi.input_terminated``
    (gunicorn, werkzeug, waitress); from wsgiref or uWSGI without chunked input the application
    would read the raw framing, or nothing, so it is 411: the client can resend with a length.
    """
    header = request.environ.get("HTTP_TRANSFER_ENCODING")
    codings = _codings(header)
    if not codings:
        return
    if codings != ["chunked"]:
        raise TransferCodingUnsupported({"Transfer-Encoding": str(header)[:100]})
    if not request.environ.get("wsgi.input_terminated"):
        raise LengthRequired({"Transfer-Encoding": "chunked"})


def has_body(request: Request) -> bool:
    """Whether the request says it carries a body (a length above zero, or any transfer coding)."""
    if request.content_length:
        return True
    return bool(_codings(request.environ.get("HTTP_TRANSFER_ENCODING")))


def iter_body(
    request: Request,
    chunk_size: int = CHUNK_SIZE,
    invalid: type[RegistryError] = BlobUploadInvalid,
) -> Generator[bytes, None, None]:
    """The request body in pieces of at most ``chunk_size``, after :func:`check_framing`.

    Honours ``Content-Length`` and, for chunked bodies, the server's ``wsgi.input_terminated``
    (werkzeug's ``request.stream`` does both); under gunicorn a body of known length is received
    from the socket directly (:mod:`.gunicorn_input`). Whatever the server's input stream raises
    while reading (gunicorn's ``NoMoreData``/``InvalidChunkSize``, werkzeug's
    ``ClientDisconnected``, ``OSError``) is the client's broken body: it becomes ``invalid``
    (a 4xx), never a 500. The framing is checked now, the body read as the result is iterated.
    """
    check_framing(request)
    return _guarded(lambda: _pieces(request, chunk_size), invalid)


def _pieces(request: Request, chunk_size: int) -> Iterator[bytes]:
    environ = request.environ
    environ.setdefault(BODY_BYTES_KEY, 0)
    pieces = socket_body(environ, chunk_size)
    if pieces is None:
        read = request.stream.read
        pieces = iter(lambda: read(chunk_size), b"")
    for piece in pieces:
        environ[BODY_BYTES_KEY] += len(piece)
        yield piece


def _guarded(open_pieces: Callable[[], Iterator[bytes]],
             invalid: type[RegistryError]) -> Generator[bytes, None, None]:
    """Yield the pieces; an exception from the server's stream becomes ``invalid``.

    Only the reads are guarded: an exception thrown into this generator by its consumer (a
    storage error at a ``yield``) passes through unchanged.
    """
    try:
        pieces = open_pieces()
    except Exception as exc:
        raise invalid({"reason": _reason(exc)}, message=_UNREADABLE) from None
    while True:
        try:
            piece = next(pieces)
        except StopIteration:
            return
        except Exception as exc:
            raise invalid({"reason": _reason(exc)}, message=_UNREADABLE) from None
        yield piece


def _reason(exc: BaseException) -> str:
    """What the server said about the body, short enough for an error detail."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


def read_small_body(
    request: Request,
    limit: int,
    error: type[RegistryError] = SizeInvalid,
    invalid: type[RegistryError] = BlobUploadInvalid,
) -> bytes:
    """Read a body the registry parses (a manifest), at most ``limit`` bytes, else ``error``.

    It must not be content-coded (415, RFC 9110 section 15.5.16): the registry would store and
    digest the coded bytes, not the document. An unreadable body is ``invalid``.
    """
    content_coding = [c for c in _codings(request.environ.get("HTTP_CONTENT_ENCODING")) if c != "identity"]
    if content_coding:
        raise ContentCodingUnsupported({"Content-Encoding": content_coding[:5]},
                                       headers={"Accept-Encoding": "identity"})
    if request.content_length is not None and request.content_length > limit:
        raise error({"limit": limit, "size": request.content_length})
    parts, total = [], 0
    for chunk in iter_body(request, min(CHUNK_SIZE, limit + 1), invalid):
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
            self.fileno = reader.fileno
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
