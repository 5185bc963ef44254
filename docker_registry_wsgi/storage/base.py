"""The storage protocol: the only place where bytes are kept.

A backend stores opaque objects under string keys and runs blob uploads. It knows nothing of
repositories, manifests or HTTP; :mod:`docker_registry_wsgi.content` builds the registry on it.
The protocol is shaped so that object stores fit it: there is no append and no rename of
objects; an upload is a backend-defined thing (a temporary file, a multipart upload) that is
written in consecutive pieces and finally committed to a key in one step.

Keys are ``/``-separated paths whose components match ``[A-Za-z0-9._+:=-]+`` and are neither
``.`` nor ``..``; :func:`check_key` is the one validator, and every backend calls it.

Concurrency contract (a registry is a store of record; the shipped
:class:`~docker_registry_wsgi.testing.StorageSuite` checks each point with deterministic
interleavings):

* **One key.** :meth:`Storage.write` is atomic: a reader sees the old bytes or the new ones.
  With ``if_absent=True`` it never replaces an existing object, whatever runs beside it.
  :meth:`Storage.swap` replaces an object only if it still has the version the caller read
  (compare-and-swap), so of several writers that read one version, one wins.
* **One upload.** Every recorded state of an upload has a *version* naming exactly its bytes,
  and the caller's record (``meta``, e.g. the running hash) is stored in the same step as the
  bytes it describes, so the two cannot disagree. A write or commit names the version it
  continues from; one that does not name the current version fails with
  :class:`UploadConflict`, and of several writes from one version at most one is recorded. A
  backend may also refuse (never wait) while another request holds the upload.
* **Committed content never changes.** Committing onto an existing key keeps the existing
  object. No write of the upload that began before, during or after the commit can reach the
  committed object.
"""

from __future__ import annotations

import builtins
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Protocol, runtime_checkable

__all__ = [
    "Storage",
    "BlobReader",
    "UploadState",
    "UploadInfo",
    "StorageError",
    "StorageFull",
    "StorageUnavailable",
    "KeyNotFound",
    "InvalidKey",
    "UploadConflict",
    "VersionConflict",
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


class VersionConflict(StorageError):
    """The object is not at the version the caller named (or exists, or does not); nothing changed."""


class UploadConflict(VersionConflict):
    """The upload is not at the version the caller named, or another request holds it now.

    Nothing was recorded; the upload's current state is unchanged by this call.
    """


class StorageFull(StorageError):
    """The store has no room for the bytes (``ENOSPC``, a quota); nothing partial was recorded."""


class StorageUnavailable(StorageError):
    """The store refuses writes for now (a read-only filesystem); retry later."""


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


@dataclass(frozen=True)
class UploadState:
    """One recorded state of an upload: its size, the version naming those bytes, the caller's record."""

    size: int
    version: str
    meta: bytes


@dataclass(frozen=True)
class UploadInfo:
    """An upload (or a backend's leftover of one) and when it last changed, for purging."""

    upload_id: str
    #: Seconds since the epoch of the last byte or state written.
    last_activity: float


class Storage(ABC):
    """A place to keep objects by key and to run uploads; see the module docstring.

    Small objects (tags, links, manifests) go through :meth:`read` and :meth:`write`; large ones
    only through :meth:`open` and the upload methods, so that no blob is ever held in memory.
    Every method may raise :class:`InvalidKey` for a bad key, :class:`StorageFull` or
    :class:`StorageUnavailable` when the store cannot take writes.
    """

    #: Smallest chunk (bytes) the backend wants per ``write_upload`` except the last; 0 if any.
    #: Sent to clients as ``OCI-Chunk-Min-Length`` when non-zero.
    min_chunk_size: int = 0

    # -- objects ------------------------------------------------------------------------------

    @abstractmethod
    def read(self, key: str) -> bytes:
        """Return a small object's whole content; :class:`KeyNotFound` if it is missing."""

    @abstractmethod
    def write(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> bool:
        """Create or replace a small object atomically: readers see the old or the new bytes.

        With ``if_absent``, an existing object is kept as it is. Return whether ``data`` was written.
        """

    @abstractmethod
    def read_versioned(self, key: str) -> tuple[bytes, str]:
        """A small object's content and its version, for :meth:`swap`; :class:`KeyNotFound` if missing.

        The version identifies the content: two writes of equal bytes may share one, so put a
        unique token in the content where telling them apart matters.
        """

    @abstractmethod
    def swap(self, key: str, data: bytes, version: str | None) -> str:
        """Write ``data`` only if the object is at ``version`` (``None``: only if it is absent).

        Atomic against every other :meth:`swap` of the key, on every process and host; returns
        the new version. :class:`VersionConflict` if the object is not at ``version``.
        """

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

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """Like :meth:`list`, with each object's size, in any order.

        Backends that list sizes for free (a directory scan, an S3 listing) override it.
        """
        for key in self.list(prefix):
            try:
                yield key, self.size(prefix + key)
            except KeyNotFound:
                continue  # deleted while we listed

    # -- uploads ------------------------------------------------------------------------------

    @abstractmethod
    def create_upload(self, upload_id: str, meta: bytes) -> UploadState:
        """Start an empty upload under a fresh identifier chosen by the caller, recording ``meta``.

        :class:`UploadConflict` if the identifier is taken.
        """

    @abstractmethod
    def upload_state(self, upload_id: str) -> UploadState:
        """The upload's current state; :class:`KeyNotFound` if there is no such upload."""

    @abstractmethod
    def write_upload(
        self, upload_id: str, version: str, chunks: Iterable[bytes], meta: Callable[[], bytes]
    ) -> UploadState:
        """Store ``chunks`` after the bytes ``version`` names and record the result as current.

        ``meta`` is called once the chunks are exhausted; what it returns is recorded with the
        new state in the same step (the caller's hash state after those bytes).
        :class:`UploadConflict` if ``version`` is not current, or if another request holds the
        upload; checked before ``chunks`` is read, and again when recording. If iterating
        ``chunks`` raises, the exception propagates and ``version`` stays current.
        :class:`KeyNotFound` if there is no such upload (or it ended meanwhile).
        """

    @abstractmethod
    def open_upload(self, upload_id: str, version: str) -> BlobReader:
        """Read the bytes ``version`` names (to verify them with another hash before committing).

        A backend may then refuse further writes from ``version``; committing it still works.
        """

    @abstractmethod
    def commit_upload(self, upload_id: str, version: str, key: str) -> bool:
        """Make the bytes ``version`` names the object ``key`` in one step, and end the upload.

        If ``key`` exists, it is kept unchanged and ``False`` is returned (content-addressed keys
        hold the same bytes). Readers of ``key`` never see a partial object, and no write of this
        upload can reach the object afterwards. :class:`UploadConflict` as for
        :meth:`write_upload`; :class:`KeyNotFound` if there is no such upload.
        """

    @abstractmethod
    def abort_upload(self, upload_id: str) -> None:
        """Drop an upload and its bytes; a missing upload is not an error.

        :class:`UploadConflict` if another request holds the upload now.
        """

    @abstractmethod
    def list_uploads(self) -> Iterator[UploadInfo]:
        """Every upload, and every leftover the backend keeps for one, with its last activity."""

    def purge_uploads(self, idle: float, *, now: float | None = None) -> builtins.list[str]:
        """Drop the uploads (and leftovers) untouched for ``idle`` seconds; return their ids.

        An upload in use is skipped. Backends with temporary files of their own extend this.
        """
        cutoff = (time.time() if now is None else now) - idle
        purged = []
        for info in list(self.list_uploads()):
            if info.last_activity < cutoff:
                try:
                    self.abort_upload(info.upload_id)
                except (UploadConflict, InvalidKey):
                    continue
                purged.append(info.upload_id)
        return purged

    # -- optional capabilities ---------------------------------------------------------------

    def redirect_url(self, key: str, *, method: str = "GET") -> str | None:
        """A URL a client may fetch ``key`` from directly (e.g. presigned), or ``None``."""
        return None

    def close(self) -> None:
        """Release clients and connections held by the backend."""
