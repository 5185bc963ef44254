"""Registry semantics: repositories, blob links, uploads, manifests, tags and referrers.

This layer knows what a repository is and keeps every rule of the distribution spec that is not
about HTTP. It speaks in names, digests and byte streams, and keeps everything (upload state
included) in a :class:`~docker_registry_wsgi.storage.Storage`, so any number of processes over
the same storage can serve one registry.

Layout of the keys (all below the storage's root)::

    blobs/<alg>/<hex[:2]>/<hex>                          blob bytes, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>              link: the blob is in this repository
    repositories/<name>/_manifests/revisions/<alg>/<hex> link to a manifest: {"mediaType", "size", ...}
    repositories/<name>/_manifests/tags/<tag>            {"digest", "mediaType", "size"} of the tagged manifest
    repositories/<name>/_referrers/<alg>/<hex>/<alg>:<hex>  descriptor of a manifest whose subject is <alg>:<hex>
    catalog/<name with "/" as "+">                       the repository exists
    uploads/<id>                                         upload state: repository, offset, hash state
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Iterable, Iterator

from .digests import Digest, Hasher, digest_bytes, new_hasher, parse_digest, restore_hasher
from .errors import (
    BlobUnknown,
    BlobUploadInvalid,
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
from .storage.base import BlobReader, KeyNotFound, Storage, UploadOffsetMismatch

__all__ = ["RegistryContent", "Upload", "StoredManifest", "Page"]


@dataclass
class Upload:
    """The recorded state of an upload session: everything needed to continue it anywhere."""

    id: str
    name: str
    algorithm: str
    offset: int
    hash_state: bytes
    started: float

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "name": self.name,
                "algorithm": self.algorithm,
                "offset": self.offset,
                "hash": base64.b64encode(self.hash_state).decode(),
                "started": self.started,
            }
        ).encode()

    @classmethod
    def from_json(cls, upload_id: str, data: bytes) -> "Upload":
        doc = json.loads(data)
        return cls(
            upload_id,
            doc["name"],
            doc["algorithm"],
            doc["offset"],
            base64.b64decode(doc["hash"]),
            doc["started"],
        )


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


def _upload_key(upload_id: str) -> str:
    return f"uploads/{upload_id}"


class _Hashing:
    """Feeds every chunk to a hasher and counts bytes on the way to storage; no copies."""

    def __init__(self, chunks: Iterable[bytes], hasher: Hasher, limit: int | None) -> None:
        self.chunks, self.hasher, self.limit, self.count = chunks, hasher, limit, 0

    def __iter__(self) -> Iterator[bytes]:
        update = self.hasher.update
        for chunk in self.chunks:
            self.count += len(chunk)
            if self.limit is not None and self.count > self.limit:
                raise SizeInvalid({"expected": self.limit}, message="body longer than declared")
            update(chunk)
            yield chunk
        if self.limit is not None and self.count != self.limit:
            raise SizeInvalid({"expected": self.limit, "received": self.count},
                              message="body shorter than declared")


class RegistryContent:
    """The registry's content over one storage backend. Stateless apart from the storage."""

    def __init__(self, storage: Storage, *, max_manifest_size: int = 4 * 1024 * 1024) -> None:
        self.storage = storage
        self.max_manifest_size = max_manifest_size

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

    def stat_blob(self, name: str, digest: Digest) -> int:
        """The size of a blob linked into ``name``; :class:`BlobUnknown` otherwise."""
        try:
            self.storage.size(_layer_key(name, digest))
            return self.storage.size(_blob_key(digest))
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
        upload = Upload(secrets.token_urlsafe(24), name, algorithm, 0, hasher.serialize(), time.time())
        self.storage.create_upload(upload.id)
        self._save(upload)
        return upload

    def _save(self, upload: Upload) -> None:
        self.storage.write(_upload_key(upload.id), upload.to_json())

    def get_upload(self, name: str, upload_id: str) -> Upload:
        """The session ``upload_id`` of repository ``name``; :class:`BlobUploadUnknown` otherwise."""
        try:
            upload = Upload.from_json(upload_id, self.storage.read(_upload_key(upload_id)))
        except (KeyNotFound, ValueError, KeyError):
            raise BlobUploadUnknown({"upload": upload_id}) from None
        if upload.name != name:  # sessions are bound to their repository
            raise BlobUploadUnknown({"upload": upload_id})
        return upload

    def _write(self, upload: Upload, chunks: Iterable[bytes], length: int | None) -> Hasher:
        hasher = restore_hasher(upload.algorithm, upload.hash_state)
        stream = _Hashing(chunks, hasher, length)
        try:
            size = self.storage.write_upload(upload.id, upload.offset, stream)
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        except UploadOffsetMismatch:
            raise BlobUploadInvalid({"upload": upload.id},
                                    message="the storage cannot continue this upload") from None
        if size != upload.offset + stream.count:
            raise BlobUploadInvalid({"upload": upload.id}, message="storage size mismatch")
        upload.offset = size
        upload.hash_state = hasher.serialize()
        return hasher

    def append(self, upload: Upload, chunks: Iterable[bytes], *, start: int | None = None,
               length: int | None = None) -> Upload:
        """Add a chunk at the end of the upload and record the new state.

        ``start`` (from ``Content-Range``) must equal the current offset, else
        :class:`RangeInvalid` (416) and nothing changes.
        """
        if start is not None and start != upload.offset:
            raise RangeInvalid({"offset": upload.offset, "start": start})
        self._write(upload, chunks, length)
        self._save(upload)
        return upload

    def finish(self, upload: Upload, digest: Digest, chunks: Iterable[bytes] | None = None, *,
               start: int | None = None, length: int | None = None) -> int:
        """Take the last chunk (if any), verify the digest and make the blob visible in the repository.

        On a digest mismatch the upload is dropped and nothing is stored (DIGEST_INVALID).
        """
        if start is not None and start != upload.offset:
            raise RangeInvalid({"offset": upload.offset, "start": start})
        if chunks is not None:
            hasher = self._write(upload, chunks, length)
        else:
            hasher = restore_hasher(upload.algorithm, upload.hash_state)
        if digest.algorithm != upload.algorithm:
            self._commit_rehashed(upload, digest)
        else:
            actual = Digest(upload.algorithm, hasher.finalize())
            if actual != digest:
                self.cancel(upload)
                raise DigestInvalid({"expected": str(digest), "actual": str(actual)})
            try:
                self.storage.commit_upload(upload.id, _blob_key(digest), upload.offset)
            except KeyNotFound:
                raise BlobUploadUnknown({"upload": upload.id}) from None
        self.storage.delete(_upload_key(upload.id))
        self._link_blob(upload.name, digest)
        return upload.offset

    def _commit_rehashed(self, upload: Upload, digest: Digest) -> None:
        """Verify a digest of another algorithm than the session's by reading the bytes once more.

        Only for clients that close a session with a different algorithm than they opened it
        with; the bytes go to a staging key first, so an unverified blob is never visible.
        """
        staging = f"staging/{upload.id}"
        try:
            self.storage.commit_upload(upload.id, staging, upload.offset)
        except KeyNotFound:
            raise BlobUploadUnknown({"upload": upload.id}) from None
        try:
            hasher = new_hasher(digest.algorithm)
            reader = self.storage.open(staging)
            try:
                while chunk := reader.read(1 << 20):
                    hasher.update(chunk)
            finally:
                reader.close()
            if Digest(digest.algorithm, hasher.finalize()) != digest:
                self.storage.delete(_upload_key(upload.id))
                raise DigestInvalid({"expected": str(digest)})
            copy_id = secrets.token_urlsafe(24)
            self.storage.create_upload(copy_id)
            reader = self.storage.open(staging)
            try:
                size = self.storage.write_upload(copy_id, 0, iter(lambda: reader.read(1 << 20), b""))
            finally:
                reader.close()
            self.storage.commit_upload(copy_id, _blob_key(digest), size)
        finally:
            self.storage.delete(staging)

    def cancel(self, upload: Upload) -> None:
        self.storage.abort_upload(upload.id)
        self.storage.delete(_upload_key(upload.id))

    def purge_uploads(self, older_than: float, *, now: float | None = None) -> list[str]:
        """Cancel the sessions started more than ``older_than`` seconds ago; return their ids.

        The spec asks registries to time out unfinished uploads ("Cancel a blob upload"); run
        this from cron or a timer (``docker-registry-wsgi purge-uploads``).
        """
        cutoff = (time.time() if now is None else now) - older_than
        purged = []
        for upload_id in list(self.storage.list("uploads/")):
            try:
                upload = Upload.from_json(upload_id, self.storage.read(_upload_key(upload_id)))
            except KeyNotFound:
                continue  # finished or cancelled meanwhile
            except (ValueError, KeyError):
                upload = Upload(upload_id, "", "sha256", 0, b"", 0.0)  # unreadable: stale
            if upload.started < cutoff:
                self.cancel(upload)
                purged.append(upload_id)
        return purged

    # -- manifests ------------------------------------------------------------------------------

    def _tag(self, name: str, tag: str) -> StoredManifest:
        try:
            doc = json.loads(self.storage.read(_tags_prefix(name) + tag))
        except KeyNotFound:
            raise ManifestUnknown({"tag": tag}) from None
        return StoredManifest(parse_digest(doc["digest"]), doc["mediaType"], doc["size"])

    def resolve(self, name: str, reference: Reference) -> Digest:
        """The digest a tag points to (a digest resolves to itself)."""
        if isinstance(reference, Digest):
            return reference
        return self._tag(name, reference).digest

    def stat_manifest(self, name: str, reference: Reference) -> StoredManifest:
        """Digest, media type and size of a manifest, without reading it.

        A tag carries them itself (a manifest never changes, and deleting it deletes its tags).
        """
        if isinstance(reference, str):
            return self._tag(name, reference)
        try:
            link = json.loads(self.storage.read(_revision_key(name, reference)))
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
        missing = [
            str(d.digest) for d in manifest.required_blobs()
            if not self._exists(_layer_key(name, d.digest))
        ] + [
            str(d.digest) for d in manifest.children
            if not self._exists(_revision_key(name, d.digest))
        ]
        if missing:
            raise ManifestBlobUnknown({"digests": missing[:20]})
        self.storage.write(_blob_key(digest), body)
        link: dict[str, object] = {"mediaType": manifest.media_type, "size": len(body)}
        if manifest.subject is not None:
            link["subject"] = str(manifest.subject.digest)
            descriptor: dict[str, object] = {
                "mediaType": manifest.media_type,
                "digest": str(digest),
                "size": len(body),
            }
            if manifest.artifact_type:
                descriptor["artifactType"] = manifest.artifact_type
            if manifest.annotations:
                descriptor["annotations"] = manifest.annotations
            self.storage.write(
                _referrers_prefix(name, manifest.subject.digest) + str(digest),
                json.dumps(descriptor).encode(),
            )
        self.storage.write(_revision_key(name, digest), json.dumps(link).encode())
        self._link_blob(name, digest)
        tag_doc = json.dumps(
            {"digest": str(digest), "mediaType": manifest.media_type, "size": len(body)}
        ).encode()
        for tag in ([reference] if isinstance(reference, str) else []) + list(tags):
            self.storage.write(_tags_prefix(name) + tag, tag_doc)
        return digest, manifest

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
        for tag in list(self.storage.list(_tags_prefix(name))):
            try:
                if self._tag(name, tag).digest == reference:
                    self.storage.delete(_tags_prefix(name) + tag)
            except ManifestUnknown:
                continue
        if "subject" in link:
            subject = parse_digest(link["subject"])
            self.storage.delete(_referrers_prefix(name, subject) + str(reference))
        self.storage.delete(key)

    # -- listings -------------------------------------------------------------------------------

    def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """Tags of ``name`` in lexical order after ``last``; :class:`NameUnknown` for no repository."""
        page = _page(self.storage.list(_tags_prefix(name), start_after=last), n)
        if not page.items and not self.repository_exists(name):
            raise NameUnknown({"name": name})
        return page

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict]:
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
