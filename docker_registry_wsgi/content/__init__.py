"""Registry semantics: repositories, blob links, uploads, manifests, tags and referrers.

This layer knows what a repository is and keeps every rule of the distribution spec that is not
about HTTP. It speaks in names, digests and byte streams, and keeps everything (upload state
included) in a :class:`~docker_registry_wsgi.storage.Storage`, so any number of processes over
the same storage can serve one registry. One module per concern, as distribution splits its
storage package:

* :mod:`.paths`: the key layout, the only place that names keys;
* :mod:`.catalog`: which repositories exist;
* :mod:`.blobs`: blob links, serving blobs, who may mount what;
* :mod:`.uploads`: upload sessions and their invariants;
* :mod:`.manifests`: manifests, tags and the referrers index;
* :mod:`.listings`: the catalog, tag and referrer listings.

:class:`RegistryContent` is the thin façade the HTTP handlers (and library callers) use.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..digests import Digest
from ..manifests import Manifest
from ..references import Reference
from ..storage.base import BlobReader, Storage
from ..usage import UsageRecords
from .blobs import BlobLinks, ServedBlob
from .catalog import Catalog
from .listings import Listings, Page
from .manifests import DEFAULT_MAX_MANIFEST_SIZE, Manifests, StoredManifest
from .uploads import Started, Upload, Uploads

__all__ = ["RegistryContent", "Upload", "Started", "StoredManifest", "ServedBlob", "Page",
           "DEFAULT_MAX_MANIFEST_SIZE"]


class RegistryContent:
    """The registry's content over one storage backend. Stateless apart from the storage.

    :param max_manifest_size: manifests longer than this are refused (413), for every caller.
    :param mount_without_from: whether a mount without ``from`` may link a blob found in any
        repository (see :mod:`.blobs`); ``True`` suits a library caller, which has no auth hook.
    """

    def __init__(self, storage: Storage, *, max_manifest_size: int = DEFAULT_MAX_MANIFEST_SIZE,
                 usage: UsageRecords | None = None, mount_without_from: bool = True) -> None:
        self.storage = storage
        #: When each digest was last relied on; garbage collection spares what was touched.
        self.usage = usage if usage is not None else UsageRecords(storage)
        self.catalog = Catalog(storage)
        self.blobs = BlobLinks(storage, self.usage, self.catalog, mount_without_from=mount_without_from)
        self.uploads = Uploads(storage, self.usage, self.blobs)
        self.manifests = Manifests(storage, self.usage, self.catalog, max_size=max_manifest_size)
        self.listings = Listings(storage, self.catalog)

    @property
    def max_manifest_size(self) -> int:
        return self.manifests.max_size

    @property
    def min_chunk_size(self) -> int:
        """Upload hint: the smallest chunk but the last the storage takes; 0 for any size."""
        return self.uploads.min_chunk_size

    # -- repositories ---------------------------------------------------------------------------

    def repository_exists(self, name: str) -> bool:
        return self.catalog.exists(name)

    def repositories(self, n: int | None, last: str | None) -> Page:
        """Repository names in lexical order after ``last``, at most ``n``."""
        return self.listings.repositories(n, last)

    # -- blobs ----------------------------------------------------------------------------------

    def serve_blob(self, name: str, digest: Digest, *, touch: bool = False,
                   redirect: bool = False) -> ServedBlob:
        """A blob of ``name`` to serve (size, reader, the storage's URL if ``redirect``); one stat of its link."""
        return self.blobs.serve(name, digest, touch=touch, redirect=redirect)

    def stat_blob(self, name: str, digest: Digest, *, touch: bool = False) -> int:
        """The size of a blob linked into ``name``; ``touch`` records it as used (a ``HEAD``)."""
        return self.serve_blob(name, digest, touch=touch).size

    def open_blob(self, name: str, digest: Digest, offset: int = 0) -> BlobReader:
        """The bytes of a blob linked into ``name``, from ``offset``; :class:`BlobUnknown` otherwise."""
        return self.blobs.open(name, digest, offset)

    def delete_blob(self, name: str, digest: Digest) -> None:
        """Unlink a blob from a repository; the bytes stay for other repositories."""
        self.blobs.delete(name, digest)

    def mount_blob(self, name: str, digest: Digest, source: str | None) -> bool:
        """Link a blob into ``name`` from ``source`` (anywhere for ``None``, if allowed)."""
        return self.blobs.mount(name, digest, source) is not None

    # -- uploads --------------------------------------------------------------------------------

    def post_upload(self, name: str, *, mount: Digest | None = None, source: str | None = None,
                    digest: Digest | None = None, algorithm: str = "sha256",
                    body: Iterable[bytes] | None = None, length: int | None = None) -> Started:
        """A ``POST`` to the uploads of ``name``: a mount, a monolithic push or a new session."""
        return self.uploads.post(name, mount=mount, source=source, digest=digest,
                                 algorithm=algorithm, body=body, length=length)

    def start_upload(self, name: str, algorithm: str = "sha256") -> Upload:
        return self.uploads.start(name, algorithm)

    def get_upload(self, name: str, upload_id: str) -> Upload:
        """The session ``upload_id`` of repository ``name``; :class:`BlobUploadUnknown` otherwise."""
        return self.uploads.get(name, upload_id)

    def append(self, upload: Upload, chunks: Iterable[bytes], *, start: int | None = None,
               length: int | None = None) -> Upload:
        """Add a chunk at the end of the upload (416 unless ``start`` is its offset)."""
        return self.uploads.append(upload, chunks, start=start, length=length)

    def finish(self, upload: Upload, digest: Digest, chunks: Iterable[bytes] | None = None, *,
               start: int | None = None, length: int | None = None) -> int:
        """Take the last chunk (if any), verify the digest and make the blob visible; its size."""
        return self.uploads.finish(upload, digest, chunks, start=start, length=length)

    def push_blob(self, name: str, digest: Digest, chunks: Iterable[bytes],
                  length: int | None = None) -> int:
        """A monolithic upload: the whole blob in one call, no session left behind."""
        return self.uploads.push(name, digest, chunks, length=length)

    def cancel(self, upload: Upload) -> None:
        """Drop the session and its bytes; :class:`BlobUploadBusy` while another request writes it."""
        self.uploads.cancel(upload)

    def purge_uploads(self, idle: float, *, now: float | None = None) -> list[str]:
        """Cancel the sessions idle for ``idle`` seconds and reclaim every leftover (see :meth:`.Uploads.purge`)."""
        return self.uploads.purge(idle, now=now)

    # -- manifests ------------------------------------------------------------------------------

    def stat_manifest(self, name: str, reference: Reference, *, touch: bool = False) -> StoredManifest:
        """Digest, media type and size of a manifest, without reading it."""
        return self.manifests.stat(name, reference, touch=touch)

    def get_manifest(self, name: str, reference: Reference) -> StoredManifest:
        return self.manifests.get(name, reference)

    def put_manifest(self, name: str, reference: Reference, body: bytes,
                     content_type: str | None, tags: Iterable[str] = ()) -> tuple[Digest, Manifest]:
        """Validate and store a manifest exactly as pushed; tag it if ``reference`` is a tag."""
        return self.manifests.put(name, reference, body, content_type, tags)

    def delete_manifest(self, name: str, reference: Reference) -> None:
        """By tag: remove the tag. By digest: remove the manifest, its tags and its referrer entry."""
        self.manifests.delete(name, reference)

    # -- listings -------------------------------------------------------------------------------

    def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """Tags of ``name`` in lexical order after ``last``; :class:`NameUnknown` for no repository."""
        return self.listings.tags(name, n, last)

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``name`` whose ``subject`` is ``subject``."""
        return self.listings.referrers(name, subject, artifact_type)
