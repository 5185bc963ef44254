"""Registry semantics: repositories, blob links, uploads, manifests, tags and referrers.

This layer knows what a repository is and keeps every rule of the distribution spec that is not
about HTTP. It speaks in names, digests and byte streams, and keeps everything (upload state
included) in a :class:`~docker_registry_wsgi.storage.Storage`, so any number of processes over
the same storage can serve one registry.

Layout of the keys (all below the storage's root)::

    blobs/<alg>/<hex[:2]>/<hex>                          blob bytes, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>              link: the blob is in this repository
    repositories/<name>/_manifests/revisions/<alg>/<hex> link to a manifest: {"mediaType", "size", ...}
    repositories/<name>/_manifests/tags/<tag>            {"digest", "mediaType", "size", "pushed"} of the tagged manifest
    repositories/<name>/_referrers/<alg>/<hex>/<alg>:<hex>  descriptor of a manifest whose subject is <alg>:<hex>
    catalog/<name with "/" as "+">                       the repository exists

An upload session is one storage upload whose recorded ``meta`` (repository, algorithm, hash
state) is stored together with the bytes it describes, so the digest verified at the end is
the digest of exactly the bytes committed (see :class:`~.storage.Storage`).
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

from .digests import Digest, Hasher, digest_bytes, new_hasher, parse_digest, restore_hasher
from .hashers import UnknownHashState
from .errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadBusy,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestUnknown,
    NameUnknown,
    RangeInvalid,
    SizeInvalid,
)
from .manifests import Manifest, parse_manifest
from .references import Reference
from .usage import UsageRecords
from .storage.base import (
    BlobReader,
    KeyNotFound,
    Storage,
    StorageError,
    UploadConflict,
    UploadState,
)

__all__ = ["RegistryContent", "Upload", "StoredManifest", "Page"]


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
class StoredManifest:
    """A manifest as stored: its digest, media type and size; ``body`` when it was read."""

    digest: Digest
    media_type: str
    size: int
    body: bytes | None = None


@dataclass(frozen=True)
class Page:
    """One page of a listing, and whether more follow (for the ``Link`` header)."""

    items: list[str]
    more: bool


def _blob_key(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def _repo(name: str) -> str:
    return f"repositories/{name}"


def _layer_key(name: str, digest: Digest) -> str:
    return f"{_repo(name)}/_layers/{digest.algorithm}/{digest.hex}"


def _revision_key(name: str, digest: Digest) -> str:
    return f"{_repo(name)}/_manifests/revisions/{digest.algorithm}/{digest.hex}"


def _tags_prefix(name: str) -> str:
    return f"{_repo(name)}/_manifests/tags/"


def _referrers_prefix(name: str, subject: Digest) -> str:
    return f"{_repo(name)}/_referrers/{subject.algorithm}/{subject.hex}/"


def _catalog_key(name: str) -> str:
    return "catalog/" + name.replace("/", "+")


#: Prefixes of upload state kept by earlier versions of this module; purging removes them.
_LEGACY_UPLOAD_PREFIXES = ("uploads/", "staging/")


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


class RegistryContent:
    """The registry's content over one storage backend. Stateless apart from the storage."""

    def __init__(self, storage: Storage, *, max_manifest_size: int = 4 * 1024 * 1024,
                 usage: UsageRecords | None = None) -> None:
        self.storage = storage
        self.max_manifest_size = max_manifest_size
        #: When each digest was last relied on; garbage collection spares what was touched.
        self.usage = usage if usage is not None else UsageRecords(storage)

    # -- repositories ---------------------------------------------------------------------------

    def _exists(self, key: str) -> bool:
        try:
            self.storage.size(key)
        except KeyNotFound:
            return False
        return True

    def repository_exists(self, name: str) -> bool:
        return self._exists(_catalog_key(name))

    def _register(self, name: str) -> None:
        key = _catalog_key(name)
        if not self._exists(key):
            self.storage.write(key, b"")

    def repositories(self, n: int | None, last: str | None) -> Page:
        """Repository names in lexical order after ``last``, at most ``n``."""
        names = sorted(k.replace("+", "/") for k in self.storage.list("catalog/"))
        if last is not None:
            names = [x for x in names if x > last]
        return _page(iter(names), n)

    # -- blobs ----------------------------------------------------------------------------------

    def blob_key(self, digest: Digest) -> str:
        return _blob_key(digest)

    def stat_blob(self, name: str, digest: Digest, *, touch: bool = False) -> int:
        """The size of a blob linked into ``name``; :class:`BlobUnknown` otherwise.

        With ``touch`` (a client's ``HEAD``, which may then skip uploading it), the blob is
        recorded as used, so garbage collection spares it for the grace period.
        """
        try:
            self.storage.size(_layer_key(name, digest))
            size = self.storage.size(_blob_key(digest))
            if touch and self.usage.touch(digest):
                self.storage.size(_layer_key(name, digest))  # still there once touched
            return size
        except KeyNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    def open_blob(self, name: str, digest: Digest, offset: int = 0) -> BlobReader:
        """The bytes of a blob linked into ``name``, from ``offset``; :class:`BlobUnknown` otherwise."""
        try:
            self.storage.size(_layer_key(name, digest))
            return self.storage.open(_blob_key(digest), offset)
        except KeyNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    def delete_blob(self, name: str, digest: Digest) -> None:
        """Unlink a blob from a repository; the bytes stay for other repositories."""
        if not self.storage.delete(_layer_key(name, digest)):
            raise BlobUnknown({"digest": str(digest)})

    def mount_blob(self, name: str, digest: Digest, source: str | None) -> bool:
        """Link a blob into ``name`` from ``source`` (or from anywhere if ``None``)."""
        if source is not None and not self._exists(_layer_key(source, digest)):
            return False
        if not self._exists(_blob_key(digest)):
            return False
        if self.usage.touch(digest) and not self._exists(_blob_key(digest)):
            return False  # collected before our touch
        self._link_blob(name, digest)
        return True

    def _link_blob(self, name: str, digest: Digest) -> None:
        key = _layer_key(name, digest)
        if not self._exists(key):
            self.storage.write(key, b"")
        self._register(name)

    # -- uploads --------------------------------------------------------------------------------

    def start_upload(self, name: str, algorithm: str = "sha256") -> Upload:
        hasher = new_hasher(algorithm)
        upload = Upload(secrets.token_urlsafe(24), name, algorithm, 0, b"", time.time(), "")
        state = self.storage.create_upload(upload.id, upload.record(hasher.serialize()))
        upload.advance(state)
        return upload

    def get_upload(self, name: str, upload_id: str) -> Upload:
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
            raise RangeInvalid({"offset": upload.offset, "start": start})
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
            raise RangeInvalid({"offset": upload.offset, "start": start})
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
            self.storage.commit_upload(upload.id, upload.version, _blob_key(digest))
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        except UploadConflict:
            raise self._conflict(upload) from None
        self._link_blob(upload.name, digest)
        return upload.offset

    def push_blob(self, name: str, digest: Digest, chunks: Iterable[bytes],
                  length: int | None = None) -> int:
        """A monolithic upload (``POST ?digest=``): the whole blob in one call, no session left behind."""
        upload = self.start_upload(name, digest.algorithm)
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

    def purge_uploads(self, idle: float, *, now: float | None = None) -> list[str]:
        """Cancel the sessions with no activity for ``idle`` seconds and reclaim every leftover.

        The spec asks registries to time out unfinished uploads ("Cancel a blob upload"); run
        this from cron or a timer (``docker-registry-wsgi purge-uploads``). Activity is the last
        byte or state written, so a long upload that is still sending is kept. The storage also
        drops its own leftovers (temporary files, orphaned multipart uploads); state kept by
        earlier versions of this registry is removed.
        """
        purged = self.storage.purge_uploads(idle, now=now)
        for prefix in _LEGACY_UPLOAD_PREFIXES:
            for key in list(self.storage.list(prefix)):
                self.storage.delete(prefix + key)
        return purged

    # -- manifests ------------------------------------------------------------------------------

    def _tag(self, name: str, tag: str) -> StoredManifest:
        """What a tag points to, as the tag records it (not checked against the manifest)."""
        try:
            doc = json.loads(self.storage.read(_tags_prefix(name) + tag))
        except KeyNotFound:
            raise ManifestUnknown({"tag": tag}) from None
        return StoredManifest(parse_digest(doc["digest"]), doc["mediaType"], doc["size"])

    def _resolve_tag(self, name: str, tag: str) -> StoredManifest:
        """The manifest a tag points to, if that manifest is still in the repository.

        A tag left pointing at a deleted manifest (a crash between the two writes of a racing
        put and delete) reads as no tag at all.
        """
        stored = self._tag(name, tag)
        if not self._exists(_revision_key(name, stored.digest)):
            raise ManifestUnknown({"tag": tag})
        return stored

    def stat_manifest(self, name: str, reference: Reference, *, touch: bool = False) -> StoredManifest:
        """Digest, media type and size of a manifest, without reading it.

        A tag carries them itself (a manifest never changes, and deleting it deletes its tags).
        With ``touch`` (a client's ``HEAD`` by digest, which may then push an index naming it),
        the manifest is recorded as used, so garbage collection spares it for the grace period.
        """
        if isinstance(reference, str):
            return self._resolve_tag(name, reference)
        key = _revision_key(name, reference)
        try:
            link = json.loads(self.storage.read(key))
            if touch and self.usage.touch(reference):
                self.storage.size(key)  # still there once touched
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(reference)}) from None
        return StoredManifest(reference, link["mediaType"], link["size"])

    def get_manifest(self, name: str, reference: Reference) -> StoredManifest:
        stored = self.stat_manifest(name, reference)
        try:
            body = self.storage.read(_blob_key(stored.digest))
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(stored.digest)}) from None
        return StoredManifest(stored.digest, stored.media_type, len(body), body)

    def put_manifest(self, name: str, reference: Reference, body: bytes,
                     content_type: str | None, tags: Iterable[str] = ()) -> tuple[Digest, Manifest]:
        """Validate and store a manifest exactly as pushed; tag it if ``reference`` is a tag."""
        manifest = parse_manifest(body, content_type)
        if isinstance(reference, Digest):
            digest = digest_bytes(body, reference.algorithm)
            if digest != reference:
                raise DigestInvalid({"expected": str(reference), "actual": str(digest)},
                                    message="manifest digest does not match the reference")
        else:
            digest = digest_bytes(body)
        self._check_references(name, manifest)
        # What the manifest refers to, and its own bytes, are used from now on: touched before
        # relying on them, then checked again (a collector may have swept them in between).
        references = {d.digest for d in manifest.required_blobs()} | {d.digest for d in manifest.children}
        for reference_digest in sorted(references | {digest}):
            self.usage.touch(reference_digest)
        # Always: a sweep and another client's touch may both fall between the first check and
        # ours, and a manifest must never be stored with a link missing.
        self._check_references(name, manifest)
        # A manifest is kept with the blobs (content-addressed, never replaced) but linked only
        # as a revision: it is not a layer, so deleting it leaves no path that serves it.
        self.storage.write(_blob_key(digest), body, if_absent=True)
        link: dict[str, object] = {"mediaType": manifest.media_type, "size": len(body)}
        if manifest.subject is not None:
            link["subject"] = str(manifest.subject.digest)
        revision = _revision_key(name, digest)
        self.storage.write(revision, json.dumps(link).encode())
        self._register(name)
        referrer = self._add_referrer(name, digest, manifest, len(body))
        tag_doc = json.dumps(
            {"digest": str(digest), "mediaType": manifest.media_type, "size": len(body),
             "pushed": self.usage.clock()}
        ).encode()
        tagged = ([reference] if isinstance(reference, str) else []) + list(tags)
        for tag in tagged:
            self.storage.write(_tags_prefix(name) + tag, tag_doc)
        if (tagged or referrer) and not self._exists(revision):
            # A delete of this digest removed the revision after we wrote it, and may have
            # looked for tags and referrers before ours existed: take ours back, as it would have.
            self._untag(name, tagged, digest)
            if referrer:
                self.storage.delete(referrer)
        return digest, manifest

    def _check_references(self, name: str, manifest: Manifest) -> None:
        """:class:`ManifestBlobUnknown` unless every blob and child the manifest names is in ``name``."""
        missing = [
            str(d.digest) for d in manifest.required_blobs()
            if not self._exists(_layer_key(name, d.digest))
        ] + [
            str(d.digest) for d in manifest.children
            if not self._exists(_revision_key(name, d.digest))
        ]
        if missing:
            raise ManifestBlobUnknown({"digests": missing[:20]})

    def _add_referrer(self, name: str, digest: Digest, manifest: Manifest, size: int) -> str | None:
        """Index a manifest under its ``subject`` (spec "Listing Referrers"); the key written."""
        if manifest.subject is None:
            return None
        descriptor: dict[str, object] = {
            "mediaType": manifest.media_type,
            "digest": str(digest),
            "size": size,
        }
        if manifest.artifact_type:
            descriptor["artifactType"] = manifest.artifact_type
        if manifest.annotations:
            descriptor["annotations"] = manifest.annotations
        key = _referrers_prefix(name, manifest.subject.digest) + str(digest)
        self.storage.write(key, json.dumps(descriptor).encode())
        return key

    def _untag(self, name: str, tags: Iterable[str], digest: Digest) -> None:
        """Remove those of ``tags`` that point to ``digest``."""
        for tag in tags:
            try:
                if self._tag(name, tag).digest == digest:
                    self.storage.delete(_tags_prefix(name) + tag)
            except ManifestUnknown:
                continue

    def delete_manifest(self, name: str, reference: Reference) -> None:
        """By tag: remove the tag. By digest: remove the manifest, its tags and its referrer entry."""
        if isinstance(reference, str):
            if not self.storage.delete(_tags_prefix(name) + reference):
                raise ManifestUnknown({"tag": reference})
            return
        key = _revision_key(name, reference)
        try:
            link = json.loads(self.storage.read(key))
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(reference)}) from None
        # The revision goes first: from then on no tag resolves to the manifest, and a put that
        # tags it after our listing below sees the revision gone and takes its tag back.
        self.storage.delete(key)
        self.storage.delete(_layer_key(name, reference))  # linked as a layer by earlier versions
        self._untag(name, list(self.storage.list(_tags_prefix(name))), reference)
        if "subject" in link:
            subject = parse_digest(link["subject"])
            self.storage.delete(_referrers_prefix(name, subject) + str(reference))

    # -- listings -------------------------------------------------------------------------------

    def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """Tags of ``name`` in lexical order after ``last``; :class:`NameUnknown` for no repository."""
        page = _page(self.storage.list(_tags_prefix(name), start_after=last), n)
        if not page.items and not self.repository_exists(name):
            raise NameUnknown({"name": name})
        return page

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict[str, object]]:
        """Descriptors of the manifests in ``name`` whose ``subject`` is ``subject``."""
        prefix = _referrers_prefix(name, subject)
        found = []
        for key in self.storage.list(prefix):
            try:
                descriptor = json.loads(self.storage.read(prefix + key))
            except KeyNotFound:
                continue
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.append(descriptor)
        return found


def _page(items: Iterator[str], n: int | None) -> Page:
    if n is None:
        return Page(list(items), False)
    taken: list[str] = []
    for item in items:
        if len(taken) == n:
            return Page(taken, True)
        taken.append(item)
    return Page(taken, False)
