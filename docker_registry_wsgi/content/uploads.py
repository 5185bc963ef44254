"""Upload sessions (spec "Pushing blobs"): monolithic, chunked, resumable from any process.

Invariants every method here keeps, whatever request or process races it:

1. A session is one storage upload whose ``meta`` (repository, algorithm, running hash) is
   recorded together with the bytes it describes, in one step: the hash state always belongs to
   exactly the bytes recorded (see :class:`~docker_registry_wsgi.storage.Storage`).
2. Every write names the version it continues. A write from a version that is no longer
   current (another request wrote meanwhile, or holds the session now) changes nothing and is
   answered :class:`RangeInvalid` (416) carrying the session's current ``Range``.
3. A chunk must start at the session's offset (``Content-Range``), else 416 and nothing is
   written; a body must be as long as declared, else ``SIZE_INVALID`` and nothing is recorded.
4. The bytes committed as a blob are those of the version whose hash was verified; a digest
   mismatch drops the session and stores nothing (``DIGEST_INVALID``).
5. The digest is touched before the commit, so a collector sweeping an earlier copy of the
   same bytes finishes first and the blob is created afresh rather than kept doomed.
6. A session belongs to the repository it was opened in: any other name gets
   ``BLOB_UPLOAD_UNKNOWN``. A monolithic push leaves no session behind, whatever happens.
"""

from __future__ import annotations

import base64
import json
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from ..digests import Digest, Hasher, check_algorithm, new_hasher, restore_hasher
from ..errors import (
    BlobUploadBusy,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    RangeInvalid,
    SizeInvalid,
)
from ..hashers import UnknownHashState
from ..storage.base import KeyNotFound, Storage, StorageError, UploadConflict, UploadState
from ..usage import UsageRecords
from .blobs import BlobLinks
from .paths import LEGACY_UPLOAD_PREFIXES, blob_key

__all__ = ["Upload", "Uploads", "Started"]


@dataclass
class Upload:
    """An upload session as last recorded: everything needed to continue it anywhere.

    ``version`` names the recorded bytes in the storage; ``hash_state`` is the running hash of
    exactly those bytes, recorded with them in one step.
    """

    id: str
    name: str
    algorithm: str
    offset: int
    hash_state: bytes
    started: float
    version: str

    def record(self, hash_state: bytes) -> bytes:
        """The session's ``meta`` for the storage, with ``hash_state`` as its running hash."""
        return json.dumps(
            {
                "name": self.name,
                "algorithm": self.algorithm,
                "hash": base64.b64encode(hash_state).decode(),
                "started": self.started,
            }
        ).encode()

    @classmethod
    def from_state(cls, upload_id: str, state: UploadState) -> "Upload":
        doc = json.loads(state.meta)
        return cls(
            upload_id,
            doc["name"],
            doc["algorithm"],
            state.size,
            base64.b64decode(doc["hash"]),
            doc["started"],
            state.version,
        )

    def advance(self, state: UploadState) -> None:
        """Take ``state`` (a newer record of this session) as the current one."""
        current = Upload.from_state(self.id, state)
        self.offset, self.hash_state, self.version = current.offset, current.hash_state, current.version


@dataclass(frozen=True)
class Started:
    """What a ``POST`` to a repository's uploads did: a session to continue, or a blob now there.

    ``upload`` is set for a new session (202); otherwise ``digest`` names the blob the
    repository now holds (201), ``size`` its length, and ``mounted`` tells a mount (from
    ``source``, ``None`` for anywhere) from a monolithic push.
    """

    upload: Upload | None = None
    digest: Digest | None = None
    size: int = 0
    mounted: bool = False
    source: str | None = None


class _Hashing:
    """Feeds every chunk to a hasher and counts bytes on the way to storage; no copies.

    A body that may be large (``limit`` unknown or at least :data:`_HASH_THREAD_AT`) is hashed
    on a thread of its own while this one receives and writes: the OpenSSL hasher releases the
    GIL, so hashing overlaps the socket and the disk. At most :data:`_HASH_QUEUE` chunks wait
    for it; the hash is whole once the iteration ends.
    """

    def __init__(self, chunks: Iterable[bytes], hasher: Hasher, limit: int | None) -> None:
        self.chunks, self.hasher, self.limit, self.count = chunks, hasher, limit, 0

    def __iter__(self) -> Iterator[bytes]:
        if self.limit is not None and self.limit < _HASH_THREAD_AT:
            update = self.hasher.update
            for chunk in self._counted():
                update(chunk)
                yield chunk
            return
        pending: queue.Queue[bytes | None] = queue.Queue(_HASH_QUEUE)
        failure: list[BaseException] = []

        def hash_in_turn() -> None:
            update = self.hasher.update
            while (chunk := pending.get()) is not None:
                if not failure:
                    try:
                        update(chunk)
                    except BaseException as exc:  # handed to the request's thread below
                        failure.append(exc)

        worker = threading.Thread(target=hash_in_turn, name="upload-hash", daemon=True)
        worker.start()
        try:
            for chunk in self._counted():
                pending.put(chunk)
                yield chunk
        finally:
            pending.put(None)
            worker.join()
        if failure:
            raise failure[0]

    def _counted(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            self.count += len(chunk)
            if self.limit is not None and self.count > self.limit:
                raise SizeInvalid({"expected": self.limit}, message="body longer than declared")
            yield chunk
        if self.limit is not None and self.count != self.limit:
            raise SizeInvalid({"expected": self.limit, "received": self.count},
                              message="body shorter than declared")


#: Bodies at least this long (or of unknown length) are hashed on a thread of their own.
_HASH_THREAD_AT = 4 << 20
#: Chunks (of at most 1 MiB) that may wait for the hashing thread.
_HASH_QUEUE = 4


class Uploads:
    """The upload sessions over one storage; committed blobs are linked through ``blobs``."""

    def __init__(self, storage: Storage, usage: UsageRecords, blobs: BlobLinks) -> None:
        self.storage, self.usage, self.blobs = storage, usage, blobs

    @property
    def min_chunk_size(self) -> int:
        """The smallest chunk but the last the storage takes (``OCI-Chunk-Min-Length``); 0 for any."""
        return self.storage.min_chunk_size

    def post(self, name: str, *, mount: Digest | None = None, source: str | None = None,
             digest: Digest | None = None, algorithm: str = "sha256",
             body: Iterable[bytes] | None = None, length: int | None = None) -> Started:
        """A ``POST`` to the uploads of ``name``: mount, monolithic push, or a new session.

        A mount (``mount``, from ``source``) that :meth:`BlobLinks.mount` refuses falls back
        to what the request would be without it (spec "Mounting a blob from another
        repository"): with ``digest`` and a ``body``, the blob is pushed in one go; otherwise a
        session opens. Without a mount, ``digest`` pushes ``body`` (empty if ``None``) at once.
        """
        if mount is not None:
            size = self.blobs.mount(name, mount, source)
            if size is not None:
                return Started(digest=mount, size=size, mounted=True, source=source)
        if digest is not None and (mount is None or body is not None):
            size = self.push(name, digest, body if body is not None else (), length=length)
            return Started(digest=digest, size=size)
        chosen = digest.algorithm if digest is not None else check_algorithm(algorithm)
        return Started(upload=self.start(name, chosen))

    # -- uploads --------------------------------------------------------------------------------

    def start(self, name: str, algorithm: str = "sha256") -> Upload:
        hasher = new_hasher(algorithm)
        upload = Upload(secrets.token_urlsafe(24), name, algorithm, 0, b"", time.time(), "")
        state = self.storage.create_upload(upload.id, upload.record(hasher.serialize()))
        upload.advance(state)
        return upload

    def get(self, name: str, upload_id: str) -> Upload:
        """The session ``upload_id`` of repository ``name``; :class:`BlobUploadUnknown` otherwise."""
        try:
            upload = Upload.from_state(upload_id, self.storage.upload_state(upload_id))
        except (KeyNotFound, StorageError, ValueError, KeyError):
            raise BlobUploadUnknown({"upload": upload_id}) from None
        if upload.name != name:  # sessions are bound to their repository
            raise BlobUploadUnknown({"upload": upload_id})
        return upload

    def _conflict(self, upload: Upload) -> Exception:
        """The error for a request that lost a race on ``upload``, which now shows the current state."""
        try:
            upload.advance(self.storage.upload_state(upload.id))
        except (KeyNotFound, StorageError):
            return BlobUploadUnknown({"upload": upload.id})
        return RangeInvalid(
            {"offset": upload.offset},
            message="the upload changed or is in use by another request; continue from its Range",
            name=upload.name, upload_id=upload.id, offset=upload.offset,
        )

    def _hasher(self, upload: Upload) -> Hasher:
        """The session's running hash, continued from its recorded state."""
        try:
            return restore_hasher(upload.algorithm, upload.hash_state)
        except UnknownHashState as exc:
            raise BlobUploadInvalid({"upload": upload.id}, message=f"cannot continue the upload here: {exc}") from None

    def _write(self, upload: Upload, chunks: Iterable[bytes], length: int | None) -> Hasher:
        hasher = self._hasher(upload)
        stream = _Hashing(chunks, hasher, length)
        try:
            state = self.storage.write_upload(
                upload.id, upload.version, stream, lambda: upload.record(hasher.serialize())
            )
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        except UploadConflict:
            raise self._conflict(upload) from None
        if state.size != upload.offset + stream.count:
            raise BlobUploadInvalid({"upload": upload.id}, message="storage size mismatch")
        upload.advance(state)
        return hasher

    def append(self, upload: Upload, chunks: Iterable[bytes], *, start: int | None = None,
               length: int | None = None) -> Upload:
        """Add a chunk at the end of the upload and record the new state with its hash.

        ``start`` (from ``Content-Range``) must equal the current offset, else
        :class:`RangeInvalid` (416) and nothing changes.
        """
        if start is not None and start != upload.offset:
            raise RangeInvalid({"offset": upload.offset, "start": start},
                               name=upload.name, upload_id=upload.id, offset=upload.offset)
        self._write(upload, chunks, length)
        return upload

    def finish(self, upload: Upload, digest: Digest, chunks: Iterable[bytes] | None = None, *,
               start: int | None = None, length: int | None = None) -> int:
        """Take the last chunk (if any), verify the digest and make the blob visible in the repository.

        The bytes committed are those of the version whose hash was verified: a write that
        raced in between makes the commit fail (416) rather than commit other bytes. On a digest
        mismatch the upload is dropped and nothing is stored (DIGEST_INVALID).
        """
        if start is not None and start != upload.offset:
            raise RangeInvalid({"offset": upload.offset, "start": start},
                               name=upload.name, upload_id=upload.id, offset=upload.offset)
        if chunks is not None:
            hasher = self._write(upload, chunks, length)
        else:
            hasher = self._hasher(upload)
        if digest.algorithm != upload.algorithm:
            actual = self._rehash(upload, digest.algorithm)
        else:
            actual = Digest(upload.algorithm, hasher.finalize())
        if actual != digest:
            self._drop(upload)
            raise DigestInvalid({"expected": str(digest), "actual": str(actual)})
        # Touch first: if a collector is sweeping an earlier copy of these bytes, the commit
        # waits for it and then creates the blob afresh instead of keeping a doomed one.
        self.usage.touch(digest)
        try:
            self.storage.commit_upload(upload.id, upload.version, blob_key(digest))
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        except UploadConflict:
            raise self._conflict(upload) from None
        self.blobs.link(upload.name, digest)
        return upload.offset

    def push(self, name: str, digest: Digest, chunks: Iterable[bytes],
                  length: int | None = None) -> int:
        """A monolithic upload (``POST ?digest=``): the whole blob in one call, no session left behind."""
        upload = self.start(name, digest.algorithm)
        try:
            return self.finish(upload, digest, chunks, length=length)
        except BaseException:
            self._drop(upload)
            raise

    def _rehash(self, upload: Upload, algorithm: str) -> Digest:
        """The digest in another algorithm than the session's, by reading its bytes once more.

        Only for clients that close a session with a different algorithm than they opened it
        with. The storage reads exactly the bytes of the session's version, which is then the
        one committed.
        """
        try:
            reader = self.storage.open_upload(upload.id, upload.version)
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        except UploadConflict:
            raise self._conflict(upload) from None
        hasher = new_hasher(algorithm)
        try:
            while chunk := reader.read(1 << 20):
                hasher.update(chunk)
        finally:
            reader.close()
        return Digest(algorithm, hasher.finalize())

    def _drop(self, upload: Upload) -> None:
        """Abort a failed session; one held by another request is left for that request or purging."""
        try:
            self.storage.abort_upload(upload.id)
        except UploadConflict:
            pass

    def cancel(self, upload: Upload) -> None:
        """Drop the session and its bytes; :class:`BlobUploadBusy` while another request writes it."""
        try:
            self.storage.abort_upload(upload.id)
        except UploadConflict:
            raise BlobUploadBusy({"upload": upload.id}) from None

    def purge(self, idle: float, *, now: float | None = None) -> list[str]:
        """Cancel the sessions with no activity for ``idle`` seconds and reclaim every leftover.

        The spec asks registries to time out unfinished uploads ("Cancel a blob upload"); run
        this from cron or a timer (``docker-registry-wsgi purge-uploads``). Activity is the last
        byte or state written, so a long upload that is still sending is kept. The storage also
        drops its own leftovers (temporary files, orphaned multipart uploads); state kept by
        earlier versions of this registry is removed.
        """
        purged = self.storage.purge_uploads(idle, now=now)
        for prefix in LEGACY_UPLOAD_PREFIXES:
            for key in list(self.storage.list(prefix)):
                self.storage.delete(prefix + key)
        return purged
