"""Manifests, tags and referrers (spec "Pulling manifests", "Pushing Manifests", "Listing Referrers").

A manifest is stored with the blobs (content-addressed, never replaced) and linked into its
repository as a *revision*, not a layer, so deleting it leaves no path that serves it. A tag
records the digest, media type and size of what it points to, so a ``HEAD`` by tag reads one
key. A manifest with a ``subject`` is indexed under that subject for the referrers API.
Deletes and pushes of the same digest may race: whichever comes second sees the other's
effect and repairs it (see :meth:`Manifests.put` and :meth:`Manifests.delete`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable

from ..digests import Digest, digest_bytes, parse_digest
from ..errors import DigestInvalid, ManifestBlobUnknown, ManifestTooLarge, ManifestUnknown
from ..manifests import Manifest, parse_manifest
from ..references import Reference
from ..storage.base import KeyNotFound, Storage
from ..usage import UsageRecords
from .catalog import Catalog
from .paths import blob_key, exists, layer_key, referrers_prefix, revision_key, tags_prefix

__all__ = ["Manifests", "StoredManifest", "DEFAULT_MAX_MANIFEST_SIZE"]

#: The largest manifest a registry takes by default (distribution's limit too).
DEFAULT_MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoredManifest:
    """A manifest as stored: its digest, media type and size; ``body`` when it was read."""

    digest: Digest
    media_type: str
    size: int
    body: bytes | None = None



class Manifests:
    """The manifests, tags and referrers of every repository over one storage."""

    def __init__(self, storage: Storage, usage: UsageRecords, catalog: Catalog, *,
                 max_size: int = DEFAULT_MAX_MANIFEST_SIZE) -> None:
        self.storage, self.usage, self.catalog = storage, usage, catalog
        #: Manifests longer than this are refused (``MANIFEST_INVALID``, 413).
        self.max_size = max_size

    def tag(self, name: str, tag: str) -> StoredManifest:
        """What a tag points to, as the tag records it (not checked against the manifest)."""
        try:
            doc = json.loads(self.storage.read(tags_prefix(name) + tag))
        except KeyNotFound:
            raise ManifestUnknown({"tag": tag}) from None
        return StoredManifest(parse_digest(doc["digest"]), doc["mediaType"], doc["size"])

    def resolve_tag(self, name: str, tag: str) -> StoredManifest:
        """The manifest a tag points to, if that manifest is still in the repository.

        A tag left pointing at a deleted manifest (a crash between the two writes of a racing
        put and delete) reads as no tag at all.
        """
        stored = self.tag(name, tag)
        if not exists(self.storage, revision_key(name, stored.digest)):
            raise ManifestUnknown({"tag": tag})
        return stored

    def stat(self, name: str, reference: Reference, *, touch: bool = False) -> StoredManifest:
        """Digest, media type and size of a manifest, without reading it.

        A tag carries them itself (a manifest never changes, and deleting it deletes its tags).
        With ``touch`` (a client's ``HEAD`` by digest, which may then push an index naming it),
        the manifest is recorded as used, so garbage collection spares it for the grace period.
        """
        if isinstance(reference, str):
            return self.resolve_tag(name, reference)
        key = revision_key(name, reference)
        try:
            link = json.loads(self.storage.read(key))
            if touch and self.usage.touch(reference):
                self.storage.size(key)  # still there once touched
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(reference)}) from None
        return StoredManifest(reference, link["mediaType"], link["size"])

    def get(self, name: str, reference: Reference) -> StoredManifest:
        stored = self.stat(name, reference)
        try:
            body = self.storage.read(blob_key(stored.digest))
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(stored.digest)}) from None
        return StoredManifest(stored.digest, stored.media_type, len(body), body)

    def put(self, name: str, reference: Reference, body: bytes,
            content_type: str | None, tags: Iterable[str] = ()) -> tuple[Digest, Manifest]:
        """Validate and store a manifest exactly as pushed; tag it if ``reference`` is a tag.

        A body longer than :attr:`max_size` is ``MANIFEST_INVALID`` (413) before it is parsed.
        """
        if len(body) > self.max_size:
            raise ManifestTooLarge({"limit": self.max_size, "size": len(body)})
        manifest = parse_manifest(body, content_type)
        if isinstance(reference, Digest):
            digest = digest_bytes(body, reference.algorithm)
            if digest != reference:
                raise DigestInvalid({"expected": str(reference), "actual": str(digest)},
                                    message="manifest digest does not match the reference")
        else:
            digest = digest_bytes(body)
        self.check_references(name, manifest)
        # What the manifest refers to, and its own bytes, are used from now on: touched before
        # relying on them, then checked again (a collector may have swept them in between).
        references = {d.digest for d in manifest.required_blobs()} | {d.digest for d in manifest.children}
        for reference_digest in sorted(references | {digest}):
            self.usage.touch(reference_digest)
        # Always: a sweep and another client's touch may both fall between the first check and
        # ours, and a manifest must never be stored with a link missing.
        self.check_references(name, manifest)
        revision, referrer = self.write_revision(name, digest, body, manifest)
        tag_doc = json.dumps(
            {"digest": str(digest), "mediaType": manifest.media_type, "size": len(body),
             "pushed": self.usage.clock()}
        ).encode()
        tagged = ([reference] if isinstance(reference, str) else []) + list(tags)
        for tag in tagged:
            self.storage.write(tags_prefix(name) + tag, tag_doc)
        if (tagged or referrer) and not exists(self.storage, revision):
            # A delete of this digest removed the revision after we wrote it, and may have
            # looked for tags and referrers before ours existed: take ours back, as it would have.
            self.untag(name, tagged, digest)
            if referrer:
                self.storage.delete(referrer)
        return digest, manifest

    def write_revision(self, name: str, digest: Digest, body: bytes,
                       manifest: Manifest) -> tuple[str, str | None]:
        """Store the bytes, link them into ``name`` as a revision, index the referrer: the keys of both.

        Kept with the blobs (content-addressed, never replaced) but linked only as a revision:
        a manifest is not a layer, so deleting it leaves no path that serves it. The caller has
        checked (or, for a cache, deliberately not checked) what the manifest refers to.
        """
        self.storage.write(blob_key(digest), body, if_absent=True)
        link: dict[str, object] = {"mediaType": manifest.media_type, "size": len(body)}
        if manifest.subject is not None:
            link["subject"] = str(manifest.subject.digest)
        revision = revision_key(name, digest)
        self.storage.write(revision, json.dumps(link).encode())
        self.catalog.register(name)
        return revision, self.add_referrer(name, digest, manifest, len(body))

    def check_references(self, name: str, manifest: Manifest) -> None:
        """:class:`ManifestBlobUnknown` unless every blob and child the manifest names is in ``name``."""
        missing = [
            str(d.digest) for d in manifest.required_blobs()
            if not exists(self.storage, layer_key(name, d.digest))
        ] + [
            str(d.digest) for d in manifest.children
            if not exists(self.storage, revision_key(name, d.digest))
        ]
        if missing:
            raise ManifestBlobUnknown({"digests": missing[:20]})

    def add_referrer(self, name: str, digest: Digest, manifest: Manifest, size: int) -> str | None:
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
        key = referrers_prefix(name, manifest.subject.digest) + str(digest)
        self.storage.write(key, json.dumps(descriptor).encode())
        return key

    def untag(self, name: str, tags: Iterable[str], digest: Digest) -> None:
        """Remove those of ``tags`` that point to ``digest``."""
        for tag in tags:
            try:
                if self.tag(name, tag).digest == digest:
                    self.storage.delete(tags_prefix(name) + tag)
            except ManifestUnknown:
                continue

    def delete(self, name: str, reference: Reference) -> None:
        """By tag: remove the tag. By digest: remove the manifest, its tags and its referrer entry."""
        if isinstance(reference, str):
            if not self.storage.delete(tags_prefix(name) + reference):
                raise ManifestUnknown({"tag": reference})
            return
        key = revision_key(name, reference)
        try:
            link = json.loads(self.storage.read(key))
        except KeyNotFound:
            raise ManifestUnknown({"digest": str(reference)}) from None
        # The revision goes first: from then on no tag resolves to the manifest, and a put that
        # tags it after our listing below sees the revision gone and takes its tag back.
        self.storage.delete(key)
        self.storage.delete(layer_key(name, reference))  # linked as a layer by earlier versions
        self.untag(name, list(self.storage.list(tags_prefix(name))), reference)
        if "subject" in link:
            subject = parse_digest(link["subject"])
            self.storage.delete(referrers_prefix(name, subject) + str(reference))
