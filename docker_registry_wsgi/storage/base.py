"""The storage protocol: the only place where bytes are kept.

A backend stores opaque objects under string keys and runs blob uploads. It knows nothing of
repositories, manifests or HTTP; :mod:`docker_registry_wsgi.content` builds the registry on it.
The protocol is shaped so that object stores fit it: there is no append and no rename of
objects; an upload is a backend-defined thing (a temporary file, a multipart upload) that is
written in consecutive pieces and finally committed to a key in one step.

Keys are ``/``-separated paths whose components match ``[A-Za-z0-9._+:=-]+`` and are neither
``.`` nor ``..``; :func:`check_key` is the one validator, and every backend calls it.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Iterable, Iterator, Protocol, runtime_checkable

__all__ = [
    "Storage",
    "BlobReader",
    "StorageError",
    "KeyNotFound",
    "InvalidKey",
    "UploadOffsetMismatch",
    "check_key",
    "check_upload_id",
]

_KEY = re.compile(r"[A-Za-z0-9._+:=-]+(?:/[A-Za-z0-9._+:=-]+)*")
_UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{16,128}")
MAX_KEY_LENGTH = 1024


class StorageError(Exception):
    """Base class of the errors a backend raises on purpose."""


class KeyNotFound(StorageError, KeyError):
    """The key (or upload) does not exist."""


class InvalidKey(StorageError, ValueError):
    """The key is not of the protocol's form; raised before any I/O."""


class UploadOffsetMismatch(StorageError):
    """``write_upload`` was asked to continue from an offset the backend cannot continue from."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a valid storage key, else raise :class:`InvalidKey`."""
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise InvalidKey(key)
    if "." in key and ("/./" in f"/{key}/" or "/../" in f"/{key}/"):
        raise InvalidKey(key)
    return key


def check_upload_id(upload_id: str) -> str:
    """Return ``upload_id`` if it is a valid upload identifier, else raise :class:`InvalidKey`."""
    if not _UPLOAD_ID.fullmatch(upload_id):
        raise InvalidKey(upload_id)
    return upload_id


@runtime_checkable
class BlobReader(Protocol):
    """What :meth:`Storage.open` returns: a binary stream read in bounded pieces, then closed.

    A reader backed by a local file should also have ``fileno()`` and be positioned at the
    requested offset, so that the WSGI server can ``sendfile`` it.
    """

    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


class Storage(ABC):
    """A place to keep objects by key and to run uploads; see the module docstring.

    Small objects (tags, links, manifests, upload state) go through :meth:`read` and
    :meth:`write`; large ones only through :meth:`open` and the upload methods, so that no blob
    is ever held in memory. Every method may raise :class:`InvalidKey` for a bad key.
    """

    #: Smallest chunk (bytes) the backend wants per ``write_upload`` except the last; 0 if any.
    #: Sent to clients as ``OCI-Chunk-Min-Length`` when non-zero.
    min_chunk_size: int = 0

    # -- objects ------------------------------------------------------------------------------

    @abstractmethod
    def read(self, key: str) -> bytes:
        """Return a small object's whole content; :class:`KeyNotFound` if it is missing."""

    @abstractmethod
    def write(self, key: str, data: bytes | bytearray | memoryview) -> None:
        """Create or replace a small object atomically: readers see the old or the new bytes."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Return an object's size in bytes; :class:`KeyNotFound` if it is missing."""

    @abstractmethod
    def open(self, key: str, offset: int = 0) -> BlobReader:
        """Open an object for streaming from ``offset``; :class:`KeyNotFound` if it is missing.

        The caller reads at most the bytes it wants and closes the reader.
        """

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Remove an object; return whether it existed. Never raises for a missing key."""

    @abstractmethod
    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        """Yield the keys below ``prefix`` (which ends in ``/``), relative to it, recursively.

        Keys come in ascending string order; with ``start_after``, only keys greater than it.
        A missing prefix yields nothing.
        """

    # -- uploads ------------------------------------------------------------------------------

    @abstractmethod
    def create_upload(self, upload_id: str) -> None:
        """Start an empty upload under a fresh identifier chosen by the caller."""

    @abstractmethod
    def write_upload(self, upload_id: str, offset: int, chunks: Iterable[bytes]) -> int:
        """Store ``chunks`` after the first ``offset`` bytes of the upload; return the new size.

        ``offset`` is the size the caller last recorded. Bytes the backend holds beyond it (from
        a write whose result was never recorded) are discarded, or, if the backend cannot do
        that, :class:`UploadOffsetMismatch` is raised. If iterating ``chunks`` raises, the
        exception propagates and the first ``offset`` bytes stay intact.
        :class:`KeyNotFound` if there is no such upload.
        """

    @abstractmethod
    def commit_upload(self, upload_id: str, key: str, size: int) -> None:
        """Make the upload's first ``size`` bytes the object ``key`` in one step; end the upload.

        Readers of ``key`` never see a partial object. If ``key`` exists it is replaced (uploads
        of the same content race harmlessly). :class:`KeyNotFound` if there is no such upload.
        """

    @abstractmethod
    def abort_upload(self, upload_id: str) -> None:
        """Drop an upload and its bytes; a missing upload is not an error."""

    # -- optional capabilities ---------------------------------------------------------------

    def redirect_url(self, key: str, *, method: str = "GET") -> str | None:
        """A URL a client may fetch ``key`` from directly (e.g. presigned), or ``None``."""
        return None

    def close(self) -> None:
        """Release clients and connections held by the backend."""
