"""Objects in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph RGW), uploads as multipart uploads.

Every byte and every piece of upload state lives in the bucket, so any number of registry
processes on any number of hosts can serve one registry and continue each other's uploads.

Layout below ``prefix``::

    <key>                                   the objects of the protocol
    ~uploads/<id>/current                   JSON: the upload's current state (layout, caller's record)
    ~uploads/<id>/tail/<offset>-<token>     the bytes after the last full part (< one part)
    ~uploads/<id>/data                      the multipart upload's key, until it is committed

``~`` is not allowed in keys (see :func:`~.base.check_key`), so ``~uploads`` never collides with one.
An upload is a multipart upload of parts of exactly ``part_size`` bytes plus a *tail* object:
bytes that do not fill a part wait in the bucket, not in a process, until later writes fill it.
The registry never holds more than one part of a blob in memory.

Concurrency rests on the store's conditional writes (``If-Match``, ``If-None-Match: *``: AWS S3
since 2024, SeaweedFS, MinIO, Ceph RGW). The version of an upload is the ETag of its
``current`` object, which names immutable pieces (parts by ETag, a uniquely named tail); a
write records its new state only if ``current`` is still the version it started from, so of
two writes from one version one is recorded and the other gets
:class:`~.base.UploadConflict`. A completed multipart upload takes the parts whose ETags the
state names, so the bytes committed are the bytes of that state even if a losing write
uploaded a part of the same number (the store then refuses the completion, never mixes).
Commits copy onto their key with ``If-None-Match: *``: an existing object is never replaced,
and nothing written to the upload afterwards can reach it.

Reads of objects larger than ``read_part_size`` are ranged GETs, up to ``read_concurrency`` at
once (see :class:`_RangeReader`): one GET streams at the pace of one store request, while a pull
should go at the pace of the store.
"""

from __future__ import annotations

import base64
import builtins
import io
import json
import os
import secrets
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any, Callable, Iterable, Iterator

from ..extras import require
from ..ranges import RangeSyntaxError, parse_answer_range
from .base import (
    BlobReader,
    KeyNotFound,
    Storage,
    StorageError,
    UploadConflict,
    UploadInfo,
    UploadState,
    VersionConflict,
    check_key,
    check_upload_id,
)

__all__ = ["S3Storage", "MIN_PART_SIZE", "MAX_PARTS"]

MiB = 1 << 20
GiB = 1 << 30
#: S3's smallest part (all parts but the last of a multipart upload).
MIN_PART_SIZE = 5 * MiB
DEFAULT_PART_SIZE = 8 * MiB
#: S3's most parts per multipart upload.
MAX_PARTS = 10_000
#: S3's largest single-request copy (CopyObject) and largest part.
MAX_COPY_SIZE = 5 * GiB
#: The ranges a large object is read in, and how many of them a reader fetches at once.
DEFAULT_READ_PART_SIZE = 8 * MiB
DEFAULT_READ_CONCURRENCY = 4
#: What a read-ahead GET takes from its response at a time (the registry's read size): a reader
#: closed meanwhile stops it after one such piece.
_PIECE = 1 * MiB

_UPLOADS = "~uploads/"
_MISSING = frozenset({"NoSuchKey", "404", "NotFound", "NoSuchUpload"})
#: What a store answers when a conditional write's condition does not hold.
_PRECONDITION = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


@dataclass
class _State:
    """An upload's layout at one size: full parts (by ETag) then a tail object, and the caller's record.

    ``sealed`` once the parts were completed into ``~uploads/<id>/data`` (to read them back or
    to commit): no write may follow, and the commit of ``origin`` (the version sealed) goes on.
    """

    part_size: int
    size: int = 0
    multipart_id: str | None = None
    etags: list[str] = field(default_factory=list)
    tail: str | None = None
    meta: bytes = b""
    sealed: bool = False
    origin: str | None = None

    @property
    def tail_size(self) -> int:
        return self.size - len(self.etags) * self.part_size

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "v": 2,
                "part_size": self.part_size,
                "size": self.size,
                "multipart_id": self.multipart_id,
                "etags": self.etags,
                "tail": self.tail,
                "meta": base64.b64encode(self.meta).decode(),
                "sealed": self.sealed,
                "origin": self.origin,
                # Two states with equal content must still get different ETags (versions).
                "nonce": secrets.token_hex(8),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "_State":
        doc = json.loads(data)
        return cls(
            part_size=int(doc["part_size"]),
            size=int(doc["size"]),
            multipart_id=doc["multipart_id"],
            etags=list(doc["etags"]),
            tail=doc["tail"],
            meta=base64.b64decode(doc["meta"]),
            sealed=bool(doc["sealed"]),
            origin=doc["origin"],
        )


class _Reader:
    """A :class:`~.base.BlobReader` over a botocore ``StreamingBody``."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int = -1, /) -> bytes:
        chunk: bytes = self._body.read(None if size is None or size < 0 else size)
        return chunk

    def close(self) -> None:
        self._body.close()


def _byte_ranges(start: int, stop: int, part: int) -> Iterator[tuple[int, int]]:
    """The inclusive ranges of ``part`` bytes (the last one shorter) that cover ``start..stop-1``."""
    for first in range(start, stop, part):
        yield first, min(first + part, stop) - 1


class _RangeReader:
    """A :class:`~.base.BlobReader` of an object in consecutive ranged GETs, ``window`` at most
    at once, so a pull goes at the pace of the store rather than of one of its requests.

    The current range is read from its response as it arrives (the first one is the GET that
    opened the object); meanwhile up to ``window - 1`` next ranges are fetched whole by threads
    of the reader's own. Each range fetched ahead takes one of the storage's ``slots`` until it
    has been read, so the slots bound the process's read-ahead GETs (its connection pool serves
    every request) and buffered bytes; with no slot free the next range is streamed in the
    caller's thread, as the first. A reader holds at most ``window`` ranges (``held`` counts
    their bytes, ``peak_held`` the most it counted), whatever the object's size.

    ``get(first, last)`` returns the response body of a range, or raises :class:`StorageError`:
    a range that cannot be read is an exception from :meth:`read` (then every later read fails
    too), never bytes left out. :meth:`close` cancels the GETs not started and waits for those
    running, which stop after the piece (:data:`_PIECE`) they are reading.
    """

    def __init__(self, get: Callable[[int, int], Any], body: Any, length: int, start: int, size: int,
                 part: int, window: int, slots: threading.BoundedSemaphore) -> None:
        self._get = get
        self._ranges = _byte_ranges(start, size, part)
        self._window = window
        self._slots = slots
        self._stream: Any = body
        self._stream_left = length
        self._pieces: deque[bytes] = deque()
        self._position = 0  # in the first of ``_pieces``
        self._current = 0  # bytes of the fetched range being read (it holds a slot), or 0
        self._ahead: deque[tuple[Future[list[bytes]], int]] = deque()
        self._pool: ThreadPoolExecutor | None = None
        self._closed = threading.Event()
        self._failure: BaseException | None = None
        self.held = 0
        self.peak_held = 0
        self._read_ahead()

    def read(self, size: int = -1, /) -> bytes:
        if self._closed.is_set():
            raise ValueError("read of a closed reader")
        if self._failure is not None:  # a range is missing: no read may step over it
            raise StorageError("an earlier read of this object failed") from self._failure
        if size is None or size < 0:
            return b"".join(iter(lambda: self.read(_PIECE), b""))
        out = []
        try:
            while size > 0:
                data = self._some(size)
                if not data:
                    break
                out.append(data)
                size -= len(data)
        except BaseException as exc:
            self._failure = exc
            raise
        return out[0] if len(out) == 1 else b"".join(out)

    def _some(self, limit: int) -> bytes:
        """At most ``limit`` of the next bytes, at least one unless the object ends here."""
        while True:
            if self._stream is not None:
                if self._stream_left:
                    data: bytes = self._stream.read(min(limit, self._stream_left))
                    if not data:
                        raise StorageError(f"a response ended {self._stream_left} bytes early")
                    self._stream_left -= len(data)
                    return data
                self._stream.close()  # read whole: its connection is back in the pool already
                self._stream = None
            elif self._pieces:
                return self._take(limit)
            elif not self._next():
                return b""

    def _take(self, limit: int) -> bytes:
        piece, position = self._pieces[0], self._position
        if position == 0 and len(piece) <= limit:
            data = self._pieces.popleft()
        else:
            data = piece[position:position + limit]
            self._position += len(data)
            if self._position < len(piece):
                return data
            self._pieces.popleft()
            self._position = 0
        if not self._pieces:
            self._done_with_current()
        return data

    def _done_with_current(self) -> None:
        """The fetched range being read was read (or dropped): its bytes and slot are free."""
        if self._current:
            self.held -= self._current
            self._current = 0
            self._slots.release()

    def _next(self) -> bool:
        """Make the next range current (fetched ahead, or streamed now); ``False`` at the end."""
        if self._ahead:
            future, self._current = self._ahead.popleft()
            self._pieces.extend(future.result())
        else:
            span = next(self._ranges, None)
            if span is None:
                if self._pool is not None:  # all read: its threads end now, not at close()
                    self._pool.shutdown(wait=True)
                return False
            self._stream, self._stream_left = self._get(*span), span[1] - span[0] + 1
        self._read_ahead()
        return True

    def _read_ahead(self) -> None:
        """Start GETs of the ranges after the current one, up to the window and the free slots."""
        while len(self._ahead) < self._window - 1 and self._slots.acquire(blocking=False):
            span = next(self._ranges, None)
            if span is None:
                self._slots.release()
                return
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._window - 1, thread_name_prefix="s3-read-ahead")
            try:
                future = self._pool.submit(self._fetch, *span)
            except BaseException:
                self._slots.release()
                raise
            length = span[1] - span[0] + 1
            self._ahead.append((future, length))
            self.held += length
            self.peak_held = max(self.peak_held, self.held)

    def _fetch(self, first: int, last: int) -> list[bytes]:
        """The bytes ``first..last`` in pieces (a pool thread); nothing once the reader is closed."""
        if self._closed.is_set():
            return []
        body = self._get(first, last)
        try:
            pieces, left = [], last - first + 1
            while left:
                if self._closed.is_set():
                    return []
                try:
                    piece: bytes = body.read(min(_PIECE, left))
                except Exception as exc:
                    raise StorageError(f"bytes {first}-{last} could not be read: {exc}") from exc
                if not piece:
                    raise StorageError(f"bytes {first}-{last}: the response ended {left} bytes early")
                pieces.append(piece)
                left -= len(piece)
            return pieces
        finally:
            body.close()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._pieces.clear()
        self._done_with_current()
        for future, _ in self._ahead:
            future.cancel()
            # At once if it never started or is done, else when its GET stops (within a piece).
            future.add_done_callback(lambda _: self._slots.release())
        self._ahead.clear()
        self.held = 0
        if self._stream is not None:
            self._stream.close()  # unread bytes left: its connection is closed, not reused
            self._stream = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class S3Storage(Storage):
    """A backend on one S3 bucket (optionally below a key prefix), through boto3.

    ``client`` (a boto3 S3 client) replaces the one built from the other arguments; otherwise
    each process makes its own client on first use (boto3 clients must not cross ``fork``).
    ``access_key``/``secret_key`` default to boto3's credential chain (environment, profile,
    instance role). With ``redirect``, :meth:`redirect_url` hands out presigned SigV4 URLs valid
    for ``redirect_expires`` seconds. ``part_size`` is the multipart part size (at least 5 MiB),
    recorded in each upload so hosts with other settings continue it correctly; blobs can be up
    to 10,000 parts long. Copies of committed blobs above ``copy_threshold`` bytes run as
    multipart copies of ``copy_part_size`` ranges. Objects longer than ``read_part_size`` bytes
    are read in ranges of that size, ``read_concurrency`` GETs at once per reader (1: one GET of
    the whole object); the ranges fetched ahead and not yet read, by all readers of a process,
    are at most a quarter of ``max_pool_connections`` (botocore's connection pool, per client).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        client: Any = None,
        redirect: bool = False,
        redirect_expires: int = 1200,
        part_size: int = DEFAULT_PART_SIZE,
        copy_threshold: int = MAX_COPY_SIZE,
        copy_part_size: int = 512 * MiB,
        copy_concurrency: int = 4,
        max_pool_connections: int = 32,
        request_timeout: float = 20.0,
        copy_timeout: float = 600.0,
        read_part_size: int = DEFAULT_READ_PART_SIZE,
        read_concurrency: int = DEFAULT_READ_CONCURRENCY,
    ) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        if read_part_size < 1 or read_concurrency < 1:
            raise ValueError("read_part_size and read_concurrency must be positive")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (S3's minimum)")
        if not MIN_PART_SIZE <= copy_part_size <= MAX_COPY_SIZE:
            raise ValueError("copy_part_size must be between 5 MiB and 5 GiB")
        if not 0 < copy_threshold <= MAX_COPY_SIZE:
            raise ValueError("copy_threshold must be positive and at most 5 GiB")
        prefix = prefix.strip("/")
        if prefix:
            check_key(prefix)
            prefix += "/"
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.region = region
        self.redirect = redirect
        self.redirect_expires = redirect_expires
        self.part_size = part_size
        self.copy_threshold = copy_threshold
        self.copy_part_size = copy_part_size
        self.copy_concurrency = max(1, copy_concurrency)
        self.read_part_size = read_part_size
        self.read_concurrency = read_concurrency
        self._credentials = (access_key, secret_key, session_token)
        self._max_pool_connections = max_pool_connections
        self._timeouts = (request_timeout, copy_timeout)
        self._given_client = client
        self._client_lock = threading.Lock()
        self._client_pid = -1
        self._own_clients: tuple[Any, Any] = (None, None)
        self._slots_pid = -1
        self._slots = threading.BoundedSemaphore(1)

    # -- the client -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The boto3 S3 client of this process, for requests the store answers promptly.

        Its read timeout is short (``request_timeout``): an S3-compatible store under load can
        leave a request unanswered while serving new ones (seen with SeaweedFS under 32
        concurrent pushes), and every request made through it is idempotent, so botocore's
        retry on a fresh connection is the cure.
        """
        return self._clients()[0]

    @property
    def slow_client(self) -> Any:
        """The client for server-side copies and multipart completion, which may take minutes."""
        return self._clients()[1]

    def _clients(self) -> tuple[Any, Any]:
        if self._given_client is not None:
            client = _without_empty_continue(self._given_client)
            return client, client
        pid = os.getpid()
        if self._client_pid != pid:
            with self._client_lock:
                if self._client_pid != pid:
                    self._own_clients = tuple(
                        self._make_client(timeout) for timeout in self._timeouts
                    )
                    self._client_pid = pid
        return self._own_clients

    def _read_slots(self) -> threading.BoundedSemaphore:
        """This process's slots for ranges read ahead (fetched or being fetched, not yet read):
        a quarter of the client's connection pool, so that their GETs and the requests' own
        calls fit in it (botocore opens, then drops, a connection past the pool), and their
        bytes stay within that many ranges, however many blobs are being pulled."""
        pid = os.getpid()
        if self._slots_pid != pid:
            pool = int(getattr(self.client.meta.config, "max_pool_connections", None)
                       or self._max_pool_connections)
            with self._client_lock:
                if self._slots_pid != pid:
                    self._slots = threading.BoundedSemaphore(max(1, pool // 4))
                    self._slots_pid = pid
        return self._slots

    def _make_client(self, read_timeout: float) -> Any:
        boto3 = require("boto3", "s3", "S3 storage")
        from botocore.config import Config

        access_key, secret_key, session_token = self._credentials
        config = Config(
            signature_version="s3v4",
            # Path-style addressing works on every S3-compatible store; AWS picks its own.
            s3={"addressing_style": "path"} if self.endpoint_url else {},
            retries={"max_attempts": 5, "mode": "standard"},
            connect_timeout=10,
            read_timeout=read_timeout,
            max_pool_connections=self._max_pool_connections,
            # Extra checksums only where S3 requires them: many S3-compatible stores reject
            # the newer default trailing checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            config=config,
        )
        return _without_empty_continue(client)

    def close(self) -> None:
        with self._client_lock:
            clients, self._own_clients, self._client_pid = self._own_clients, (None, None), -1
        for client in clients:
            if client is not None and hasattr(client, "close"):
                client.close()

    # -- keys -------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _upload_prefix(self, upload_id: str) -> str:
        return f"{self.prefix}{_UPLOADS}{check_upload_id(upload_id)}/"

    def _current_key(self, upload_id: str) -> str:
        return f"{self._upload_prefix(upload_id)}current"

    # -- objects ----------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise _not_found(exc, key) from None
        with response["Body"] as body:
            data: bytes = body.read()
        return data

    def write(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> bool:
        condition = {"IfNoneMatch": "*"} if if_absent else {}
        try:
            self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=bytes(data), **condition)
        except Exception as exc:
            if if_absent and _code(exc) in _PRECONDITION:
                return False
            raise
        return True

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._key(key))
        except Exception as exc:
            raise _not_found(exc, key) from None
        with response["Body"] as body:
            return body.read(), str(response["ETag"])

    def swap(self, key: str, data: bytes, version: str | None) -> str:
        s3_key = self._key(key)
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        try:
            response = self.client.put_object(Bucket=self.bucket, Key=s3_key, Body=bytes(data), **condition)
        except Exception as exc:
            if _code(exc) not in _PRECONDITION and _code(exc) not in _MISSING:
                raise
            # A retried request whose first attempt was recorded fails its own condition.
            try:
                current, current_version = self.read_versioned(key)
            except KeyNotFound:
                raise VersionConflict(f"{key} does not exist") from None
            if current == bytes(data):
                return current_version
            raise VersionConflict(f"{key} is not at version {version}") from None
        return str(response["ETag"])

    def size(self, key: str) -> int:
        return self._head(self._key(key), key)

    def _head(self, s3_key: str, key: str) -> int:
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=s3_key)
        except Exception as exc:
            raise _not_found(exc, key) from None
        return int(response["ContentLength"])

    def open(self, key: str, offset: int = 0) -> BlobReader:
        """A GET of the first ``read_part_size`` bytes from ``offset`` (of all of them with a
        ``read_concurrency`` of 1): its ``Content-Range`` tells the object's size, and the rest
        of a larger one is read in ranges (:class:`_RangeReader`)."""
        s3_key = self._key(key)
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Key": s3_key}
        if self.read_concurrency > 1:
            arguments["Range"] = f"bytes={offset}-{offset + self.read_part_size - 1}"
        elif offset:
            arguments["Range"] = f"bytes={offset}-"
        try:
            response = self.client.get_object(**arguments)
        except Exception as exc:
            if _code(exc) != "InvalidRange":
                raise _not_found(exc, key) from None
            self._head(s3_key, key)  # KeyNotFound if it is missing, else: offset is past the end
            return io.BytesIO(b"")
        body, content_range = response["Body"], response.get("ContentRange")
        if "Range" not in arguments or (content_range is None and not offset):
            return _Reader(body)  # the whole object (a store may answer a range with all of it)
        try:
            answered, size = parse_answer_range(content_range or "")
            if answered.start != offset:
                raise RangeSyntaxError(content_range)
        except RangeSyntaxError:
            body.close()
            raise StorageError(f"{key}: the store answered a GET of bytes={offset}- with "
                               f"Content-Range {content_range!r}") from None
        if answered.end + 1 == size or self.read_concurrency == 1:
            return _Reader(body)
        etag = response.get("ETag")
        return _RangeReader(lambda first, last: self._get_range(s3_key, key, first, last, etag),
                            body, answered.length, answered.end + 1, size, self.read_part_size,
                            self.read_concurrency, self._read_slots())

    def _get_range(self, s3_key: str, key: str, first: int, last: int, etag: str | None) -> Any:
        """The body of bytes ``first..last`` of the object as it was at ``etag``, else StorageError."""
        condition = {"IfMatch": etag} if etag else {}
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=s3_key, Range=f"bytes={first}-{last}",
                                              **condition)
        except Exception as exc:
            code = _code(exc)
            if code not in _MISSING and code not in _PRECONDITION:
                raise StorageError(f"{key} could not be read at bytes {first}-{last}: {exc}") from exc
            why = "was deleted" if code in _MISSING else "was replaced"
            raise StorageError(f"{key} {why} while being read, at bytes {first}-{last}") from None
        body = response["Body"]
        if response.get("ContentLength") != last - first + 1:
            body.close()
            raise StorageError(f"{key}: a GET of bytes {first}-{last} answered "
                               f"{response.get('ContentLength')} bytes")
        return body

    def delete(self, key: str) -> bool:
        s3_key = self._key(key)
        try:
            self._head(s3_key, key)
        except KeyNotFound:
            return False
        self.client.delete_object(Bucket=self.bucket, Key=s3_key)
        return True

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        if prefix:
            if not prefix.endswith("/"):
                raise ValueError("list() prefix must end in '/'")
            check_key(prefix[:-1])
        return self._walk(self.prefix + prefix, "", start_after)

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        if prefix:
            if not prefix.endswith("/"):
                raise ValueError("list_sizes() prefix must end in '/'")
            check_key(prefix[:-1])
        top = self.prefix + prefix
        for item in self._objects(top):
            key = item["Key"][len(top) :]
            if not prefix and key.startswith(_UPLOADS):
                continue
            yield key, int(item["Size"])

    def _walk(self, level: str, relative: str, start_after: str | None) -> Iterator[str]:
        """Keys below ``level`` (an S3 prefix), in byte order, one delimited level at a time.

        Some stores (SeaweedFS) list folders depth-first, so a flat listing puts ``a/b`` before
        ``a-b``; listing one level with a delimiter and merging files with folders as ``name/``
        gives the protocol's order everywhere. The ``heap`` holds entries the listing has shown
        until no later entry can sort before them.
        """
        heap: list[str] = []
        for name in self._level(level, start_after):
            while heap and heap[0] < name.rstrip("/"):
                yield from self._emit(heappop(heap), level, relative, start_after)
            if not relative and name == _UPLOADS:
                continue
            heappush(heap, name)
        while heap:
            yield from self._emit(heappop(heap), level, relative, start_after)

    def _emit(
        self, name: str, level: str, relative: str, start_after: str | None
    ) -> Iterator[str]:
        if not name.endswith("/"):
            if start_after is None or name > start_after:
                yield relative + name
            return
        if start_after is None or name > start_after:
            yield from self._walk(level + name, relative + name, None)
        elif start_after.startswith(name):
            yield from self._walk(level + name, relative + name, start_after[len(name) :])

    def _level(self, level: str, start_after: str | None) -> Iterator[str]:
        """Names directly below ``level``: files as ``name``, folders as ``name/``."""
        arguments: dict[str, Any] = {"Bucket": self.bucket, "Prefix": level, "Delimiter": "/"}
        server_start = _safe_start_after(start_after)
        if server_start:
            arguments["StartAfter"] = level + server_start
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(**arguments):
            entries = [item["Key"] for item in page.get("Contents", ())]
            entries += [item["Prefix"] for item in page.get("CommonPrefixes", ())]
            # Within one page the two kinds come separately; order them by bare name.
            for entry in sorted((e[len(level) :] for e in entries), key=lambda e: e.rstrip("/")):
                if entry and entry != "/":
                    yield entry

    # -- uploads ----------------------------------------------------------------------------

    def create_upload(self, upload_id: str, meta: bytes) -> UploadState:
        state = _State(part_size=self.part_size, meta=bytes(meta))
        try:
            version = self._put_state(upload_id, state, None)
        except UploadConflict:
            raise UploadConflict(f"upload {upload_id} exists") from None
        return UploadState(0, version, state.meta)

    def _put_state(self, upload_id: str, state: _State, version: str | None) -> str:
        """Record ``state`` as current if ``version`` is (``None``: if there is none); its ETag."""
        condition = {"IfMatch": version} if version is not None else {"IfNoneMatch": "*"}
        body = state.to_json()
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=self._current_key(upload_id), Body=body, **condition
            )
        except Exception as exc:
            if _code(exc) in _MISSING:
                raise KeyNotFound(upload_id) from None
            if _code(exc) not in _PRECONDITION:
                raise
            # botocore retries a request whose answer was lost; if the first attempt was
            # recorded, the retry's condition fails on our own state (its nonce is unique).
            try:
                current = self.client.get_object(Bucket=self.bucket, Key=self._current_key(upload_id))
            except Exception as missing:
                raise _not_found(missing, upload_id) from None
            with current["Body"] as stream:
                if stream.read() == body:
                    return str(current["ETag"])
            raise UploadConflict(f"upload {upload_id} moved on from version {version}") from None
        return str(response["ETag"])

    def _state(self, upload_id: str) -> tuple[_State, str]:
        """The upload's current layout and version; KeyNotFound without the upload."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self._current_key(upload_id))
        except Exception as exc:
            raise _not_found(exc, upload_id) from None
        with response["Body"] as body:
            data = body.read()
        try:
            return _State.from_json(data), str(response["ETag"])
        except (ValueError, KeyError, TypeError):
            raise StorageError(f"upload {upload_id} has an unreadable state") from None

    def _at(self, upload_id: str, version: str, *, sealed_ok: bool = False) -> tuple[_State, str]:
        """The current state if it is ``version`` (or, with ``sealed_ok``, sealed from it)."""
        state, current = self._state(upload_id)
        if current == version and not state.sealed:
            return state, current
        if sealed_ok and state.sealed and version in (current, state.origin):
            return state, current
        raise UploadConflict(f"upload {upload_id} is not at version {version}")

    def upload_state(self, upload_id: str) -> UploadState:
        state, version = self._state(upload_id)
        return UploadState(state.size, state.origin if state.sealed and state.origin else version, state.meta)

    def write_upload(
        self, upload_id: str, version: str, chunks: Iterable[bytes], meta: Callable[[], bytes]
    ) -> UploadState:
        state, _ = self._at(upload_id, version)
        part_size = state.part_size
        etags = list(state.etags)
        multipart_id = state.multipart_id
        buffer: bytearray | None = None  # the bytes after the last full part, once needed
        written = 0
        tail = state.tail
        try:
            for chunk in chunks:
                if not chunk:
                    continue
                if buffer is None:
                    buffer = bytearray(self._read_tail(state))
                view = memoryview(chunk)
                while view:
                    taken = view[: part_size - len(buffer)]
                    buffer += taken
                    view = view[len(taken) :]
                    written += len(taken)
                    if len(buffer) == part_size:
                        if multipart_id is None:
                            multipart_id = self._start_multipart(upload_id)
                        etags.append(self._upload_part(upload_id, multipart_id, len(etags) + 1, buffer))
                        buffer.clear()
            size = state.size + written
            if buffer is not None:
                tail = None
                if buffer:
                    tail = f"{self._upload_prefix(upload_id)}tail/{size:020d}-{secrets.token_hex(6)}"
                    self.client.put_object(Bucket=self.bucket, Key=tail, Body=bytes(buffer))
            new = _State(part_size=part_size, size=size, multipart_id=multipart_id, etags=etags,
                         tail=tail, meta=bytes(meta()))
            new_version = self._put_state(upload_id, new, version)
        except BaseException:
            # Nothing of an unrecorded write may stay behind: its tail, its new multipart upload.
            if tail is not None and tail != state.tail:
                self.client.delete_object(Bucket=self.bucket, Key=tail)
            if multipart_id is not None and multipart_id != state.multipart_id:
                self._abort_multipart(self._upload_prefix(upload_id) + "data", multipart_id)
            raise
        return UploadState(size, new_version, new.meta)

    def _read_tail(self, state: _State) -> bytes:
        if state.tail is None:
            return b""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=state.tail)
        except Exception as exc:
            raise _not_found(exc, state.tail) from None  # the upload ended meanwhile
        with response["Body"] as body:
            data: bytes = body.read()
        if len(data) != state.tail_size:
            raise StorageError(f"upload tail {state.tail} has {len(data)} bytes, expected {state.tail_size}")
        return data

    def _start_multipart(self, upload_id: str) -> str:
        response = self.client.create_multipart_upload(
            Bucket=self.bucket, Key=self._upload_prefix(upload_id) + "data"
        )
        return str(response["UploadId"])

    def _upload_part(self, upload_id: str, multipart_id: str, number: int, data: bytearray) -> str:
        if number > MAX_PARTS:
            raise StorageError(
                f"upload {upload_id} exceeds {MAX_PARTS} parts of {len(data)} bytes; "
                "raise part_size for larger blobs"
            )
        try:
            response = self.client.upload_part(
                Bucket=self.bucket,
                Key=self._upload_prefix(upload_id) + "data",
                UploadId=multipart_id,
                PartNumber=number,
                Body=data,
            )
        except Exception as exc:
            raise _not_found(exc, upload_id) from None
        return str(response["ETag"])

    def _seal(self, upload_id: str, version: str) -> tuple[_State, str]:
        """The state of ``version`` with its bytes in one object (``_source``), writes refused."""
        state, current = self._at(upload_id, version, sealed_ok=True)
        if state.sealed:
            return state, current
        if state.etags:
            try:
                self._complete(upload_id, state)
            except Exception as exc:
                if _code(exc) in ("InvalidPart", "InvalidPartOrder"):
                    raise UploadConflict(
                        f"upload {upload_id}: a part was rewritten by a concurrent write"
                    ) from None
                if _code(exc) != "NoSuchUpload":
                    raise
                # Completed already: by a commit that died before recording the seal, or by
                # one racing ours. Only a completion of these very bytes has this size (every
                # later write would have added bytes, and writes cannot add parts any more).
                try:
                    completed = self._head(self._upload_prefix(upload_id) + "data", upload_id)
                except KeyNotFound:
                    completed = -1
                if completed != state.size:
                    raise UploadConflict(f"upload {upload_id} is being committed") from None
        sealed = _State(part_size=state.part_size, size=state.size, multipart_id=state.multipart_id,
                        etags=state.etags, tail=state.tail, meta=state.meta, sealed=True,
                        origin=version)
        return sealed, self._put_state(upload_id, sealed, version)

    def _complete(self, upload_id: str, state: _State) -> None:
        """Complete the multipart upload with the state's parts, its tail as the last part."""
        staging = self._upload_prefix(upload_id) + "data"
        parts = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(state.etags, 1)]
        if state.tail is not None:
            response = self.slow_client.upload_part_copy(
                Bucket=self.bucket,
                Key=staging,
                UploadId=state.multipart_id,
                PartNumber=len(parts) + 1,
                CopySource={"Bucket": self.bucket, "Key": state.tail},
            )
            parts.append({"PartNumber": len(parts) + 1, "ETag": response["CopyPartResult"]["ETag"]})
        self.slow_client.complete_multipart_upload(
            Bucket=self.bucket,
            Key=staging,
            UploadId=state.multipart_id,
            MultipartUpload={"Parts": parts},
        )

    def _source(self, upload_id: str, state: _State) -> str | None:
        """The object holding a sealed state's bytes; ``None`` for an empty upload."""
        if state.etags:
            return self._upload_prefix(upload_id) + "data"
        return state.tail

    def open_upload(self, upload_id: str, version: str) -> BlobReader:
        state, _ = self._seal(upload_id, version)
        source = self._source(upload_id, state)
        if source is None:
            return io.BytesIO(b"")
        response = self.client.get_object(Bucket=self.bucket, Key=source)
        return _Reader(response["Body"])

    def commit_upload(self, upload_id: str, version: str, key: str) -> bool:
        target = self._key(key)
        state, _ = self._seal(upload_id, version)
        source = self._source(upload_id, state)
        try:
            if source is None:
                self.client.put_object(Bucket=self.bucket, Key=target, Body=b"", IfNoneMatch="*")
            else:
                self._copy(source, target, state.size)
            created = True
        except Exception as exc:
            if _code(exc) not in _PRECONDITION:
                raise
            created = False
        self._drop_upload(upload_id)
        return created

    def _copy(self, source: str, target: str, size: int) -> None:
        """Copy ``source`` to a new ``target`` inside the bucket, without the bytes leaving S3.

        Never replaces ``target``: the store refuses (a precondition error) if it exists.
        """
        copy_source = {"Bucket": self.bucket, "Key": source}
        if size <= self.copy_threshold:
            self.slow_client.copy_object(
                Bucket=self.bucket, Key=target, CopySource=copy_source, IfNoneMatch="*"
            )
            return
        part = max(self.copy_part_size, -(-size // MAX_PARTS))
        ranges = list(_byte_ranges(0, size, part))
        multipart_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=target)[
            "UploadId"
        ]

        def copy_part(numbered: tuple[int, tuple[int, int]]) -> dict[str, Any]:
            number, (first, last) = numbered
            response = self.slow_client.upload_part_copy(
                Bucket=self.bucket,
                Key=target,
                UploadId=multipart_id,
                PartNumber=number,
                CopySource=copy_source,
                CopySourceRange=f"bytes={first}-{last}",
            )
            return {"PartNumber": number, "ETag": response["CopyPartResult"]["ETag"]}

        try:
            with ThreadPoolExecutor(min(self.copy_concurrency, len(ranges))) as pool:
                parts = list(pool.map(copy_part, enumerate(ranges, 1)))
            self.slow_client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=multipart_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=target, UploadId=multipart_id
            )
            raise

    def abort_upload(self, upload_id: str) -> None:
        self._drop_upload(upload_id)

    def _drop_upload(self, upload_id: str) -> None:
        """Abort the upload's multipart uploads, then delete its objects (``current`` last)."""
        prefix = self._upload_prefix(upload_id)
        for multipart in self._multipart_uploads(prefix):
            self._abort_multipart(multipart["Key"], multipart["UploadId"])
        keys = [item["Key"] for item in self._objects(prefix)]
        # The current state goes last: while it is left, a retry can still find the upload.
        keys.sort(key=lambda k: (k == prefix + "current", k))
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            self.client.delete_objects(
                Bucket=self.bucket,
                Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
            )

    def _abort_multipart(self, key: str, multipart_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=multipart_id)
        except Exception as exc:
            if _code(exc) not in _MISSING:
                raise

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", ())

    def _multipart_uploads(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", ())

    # -- stale uploads ----------------------------------------------------------------------

    def list_uploads(self) -> Iterator[UploadInfo]:
        """Every upload in the bucket with its last activity, including orphaned multipart ones.

        Activity counts the upload's objects and its multipart uploads' parts, so a long write
        that has not recorded a state yet is still seen as active.
        """
        root = self.prefix + _UPLOADS
        seen: dict[str, float] = {}

        def saw(upload_id: str, when: Any) -> None:
            seen[upload_id] = max(when.timestamp(), seen.get(upload_id, 0.0))

        for item in self._objects(root):
            saw(item["Key"][len(root) :].split("/", 1)[0], item["LastModified"])
        for upload in self._multipart_uploads(root):
            upload_id = upload["Key"][len(root) :].split("/", 1)[0]
            saw(upload_id, upload["Initiated"])
            for part in self._parts(upload["Key"], upload["UploadId"]):
                saw(upload_id, part["LastModified"])
        return iter([UploadInfo(i, seen[i]) for i in sorted(seen)])

    def _parts(self, key: str, multipart_id: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_parts")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Key=key, UploadId=multipart_id):
                yield from page.get("Parts", ())
        except Exception as exc:
            if _code(exc) not in _MISSING:
                raise

    def purge_uploads(self, idle: float, *, now: float | None = None) -> builtins.list[str]:
        """Drop uploads idle for ``idle`` seconds, and multipart copies onto keys left as long
        (a process that died while committing a large blob)."""
        cutoff = (time.time() if now is None else now) - idle
        purged = super().purge_uploads(idle, now=now)
        root = self.prefix + _UPLOADS
        for multipart in self._multipart_uploads(self.prefix):
            if multipart["Key"].startswith(root):
                continue
            if multipart["Initiated"].timestamp() < cutoff and not any(
                part["LastModified"].timestamp() >= cutoff
                for part in self._parts(multipart["Key"], multipart["UploadId"])
            ):
                self._abort_multipart(multipart["Key"], multipart["UploadId"])
        return purged

    # -- redirects --------------------------------------------------------------------------

    def redirect_url(self, key: str, *, method: str = "GET") -> str | None:
        if not self.redirect:
            return None
        operation = {"GET": "get_object", "HEAD": "head_object"}.get(method.upper())
        if operation is None:
            return None
        return str(
            self.client.generate_presigned_url(
                operation,
                Params={"Bucket": self.bucket, "Key": self._key(key)},
                ExpiresIn=self.redirect_expires,
                HttpMethod=method.upper(),
            )
        )


def _without_empty_continue(client: Any) -> Any:
    """``client``, sending empty PUT bodies without ``Expect: 100-continue`` (idempotent)."""
    client.meta.events.register_last("before-call.s3", _no_continue_for_empty_bodies,
                                     unique_id="docker-registry-wsgi-no-empty-continue")
    return client


def _no_continue_for_empty_bodies(params: dict[str, Any], **_: Any) -> None:
    """Send empty PUT bodies without ``Expect: 100-continue`` (botocore adds it to every PUT).

    A store may answer such a request at once instead of with ``100 Continue`` (SeaweedFS
    does); botocore then leaves that answer on the connection, where the next request reads
    it, and waits out its read timeout (seen: 20 s stalls after writing an empty link).
    botocore's own switch for this is an environment variable, which a library must not set.
    """
    headers, body = params.get("headers", {}), params.get("body")
    if headers.get("Expect") and body is not None and hasattr(body, "seek") and hasattr(body, "tell"):
        position = body.tell()
        empty = body.seek(0, os.SEEK_END) == 0
        body.seek(position)
        if empty:
            del headers["Expect"]


def _code(exc: BaseException) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code"))
    return None


def _not_found(exc: Exception, name: str) -> Exception:
    """``KeyNotFound`` for S3's missing-object errors, else ``exc`` itself."""
    if _code(exc) in _MISSING:
        return KeyNotFound(name)
    return exc


def _safe_start_after(start_after: str | None) -> str | None:
    """A server-side ``StartAfter`` for one level that cannot skip what the byte order keeps.

    Stores that order folders by bare name skip folder ``a`` for a ``StartAfter`` of ``a-b``,
    though ``a/...`` sorts after ``a-b``; cutting the marker before its first character that
    sorts below ``/`` (and one more, so the folder named by it is kept) avoids that. The
    caller filters the rest exactly.
    """
    if not start_after:
        return None
    component = start_after.split("/", 1)[0]
    for index, char in enumerate(component):
        if char < "/":
            component = component[:index]
            break
    return component[:-1] or None
