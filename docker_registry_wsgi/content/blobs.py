"""Blob links: which blobs a repository holds, serving them, and who may mount what.

Blob bytes are stored once (:func:`~.paths.blob_key`) and linked into each repository that has
them (:func:`~.paths.layer_key`); a repository serves only the blobs linked into it, so a
digest alone never opens another repository's blob. Mount rules (spec "Mounting a blob from
another repository"), all here:

* ``from=<source>``: the blob must be linked into ``source``; the caller must be allowed to
  pull ``source`` (the route table declares that access, the auth hook checks it).
* no ``from``: only when the registry allows mounts from anywhere (``mount_without_from``,
  by default only without an auth hook), since the caller then names a blob by digest alone.
* either way the bytes must still be stored once touched (a collector may have swept them).

Anything refused is not an error: the client falls back to uploading (202 with a session).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from ..digests import Digest
from ..errors import BlobUnknown
from ..references import parse_name
from ..storage.base import BlobReader, KeyNotFound, Storage
from ..usage import UsageRecords
from .catalog import Catalog
from .paths import blob_key, exists, layer_key

__all__ = ["BlobLinks", "ServedBlob"]


@dataclass(frozen=True)
class ServedBlob:
    """A blob to serve: its size and either the storage's own URL for it or a reader of its bytes.

    ``redirect_url`` is set only when asked for and the storage offers one (S3's presigned
    URL). :meth:`open` returns the storage's reader from an offset, a file object a WSGI
    server's ``wsgi.file_wrapper`` can ``sendfile`` when the storage is a filesystem.
    """

    digest: Digest
    size: int
    redirect_url: str | None = None
    opener: Callable[[int], BlobReader] = field(default=lambda offset: _nothing(), repr=False)

    def open(self, offset: int = 0) -> BlobReader:
        """A reader of the blob's bytes from ``offset``."""
        return self.opener(offset)


def _nothing() -> BlobReader:
    raise BlobUnknown(message="blob has no bytes to read here")


class BlobLinks:
    """The blobs of each repository over one storage."""

    def __init__(self, storage: Storage, usage: UsageRecords, catalog: Catalog, *,
                 mount_without_from: bool = True) -> None:
        self.storage, self.usage, self.catalog = storage, usage, catalog
        #: Whether a mount without ``from`` may link a blob found in any repository.
        self.mount_without_from = mount_without_from

    def stat(self, name: str, digest: Digest, *, touch: bool = False) -> int:
        """The size of a blob linked into ``name``; :class:`BlobUnknown` otherwise.

        With ``touch`` (a client's ``HEAD``, which may then skip uploading it), the blob is
        recorded as used, so garbage collection spares it for the grace period.
        """
        return self.serve(name, digest, touch=touch, redirect=False).size

    def serve(self, name: str, digest: Digest, *, touch: bool = False, redirect: bool = False) -> ServedBlob:
        """The blob ``digest`` of ``name`` to serve: its link and size are read once.

        ``touch`` as for :meth:`stat`; ``redirect`` asks the storage for a URL of its own.
        """
        link, key = layer_key(name, digest), blob_key(digest)
        try:
            self.storage.size(link)
            size = self.storage.size(key)
            if touch and self.usage.touch(digest):
                self.storage.size(link)  # still there once touched
        except KeyNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        url = self.storage.redirect_url(key) if redirect else None
        return ServedBlob(digest, size, url, lambda offset: self._open(digest, offset))

    def open(self, name: str, digest: Digest, offset: int = 0) -> BlobReader:
        """The bytes of a blob linked into ``name``, from ``offset``; :class:`BlobUnknown` otherwise."""
        try:
            self.storage.size(layer_key(name, digest))
        except KeyNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None
        return self._open(digest, offset)

    def _open(self, digest: Digest, offset: int) -> BlobReader:
        try:
            return self.storage.open(blob_key(digest), offset)
        except KeyNotFound:
            raise BlobUnknown({"digest": str(digest)}) from None

    def delete(self, name: str, digest: Digest) -> None:
        """Unlink a blob from a repository; the bytes stay for other repositories."""
        if not self.storage.delete(layer_key(name, digest)):
            raise BlobUnknown({"digest": str(digest)})

    def mount(self, name: str, digest: Digest, source: str | None) -> int | None:
        """Link a blob into ``name`` from ``source`` by the rules above; its size, or ``None`` if refused."""
        if source is None:
            if not self.mount_without_from:
                return None
        else:
            parse_name(source)
            if not exists(self.storage, layer_key(source, digest)):
                return None
        return self.adopt(name, digest)

    def adopt(self, name: str, digest: Digest) -> int | None:
        """Link stored bytes into ``name`` for a caller that settled the right to them; size or ``None``.

        ``None`` when the bytes are not stored (or were collected before our touch).
        """
        size = self.stored_size(digest)
        if size is None:
            return None
        if self.usage.touch(digest) and not exists(self.storage, blob_key(digest)):
            return None  # collected before our touch
        self.link(name, digest)
        return size

    def stored_size(self, digest: Digest) -> int | None:
        """The size of the bytes of ``digest`` if any repository's blob or manifest has them stored."""
        try:
            return self.storage.size(blob_key(digest))
        except KeyNotFound:
            return None

    def link(self, name: str, digest: Digest) -> None:
        """Make stored bytes a blob of ``name`` (and ``name`` a repository)."""
        key = layer_key(name, digest)
        if not exists(self.storage, key):
            self.storage.write(key, b"")
        self.catalog.register(name)
