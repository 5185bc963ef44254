"""A mirrored repository's content for one request: the local cache, filled from the upstream.

:class:`MirroredContent` is what the handlers get as ``ctx.content`` for a name inside a mirrored
namespace. It answers from the storage when it can, exactly as for a pushed repository, and
goes to the upstream on a miss:

* **Blobs.** A ``GET`` that misses joins or starts the blob's fill (:mod:`.fills`): the bytes
  stream to the client while they are written, and are committed only once verified. A ``HEAD``
  that misses asks the upstream with a ``HEAD`` and stores nothing.
* **Manifests by digest** are fetched once, verified against the digest, and kept for good.
* **Manifests by tag** are served from the cache while the tag was checked less than ``ttl``
  ago; after that a ``HEAD`` to the upstream revalidates it (a ``GET`` only when the digest is
  new). If the upstream is down or rate-limits us, the cached tag is served anyway, with a
  warning in the log; a tag the upstream says is gone is removed.
* **Tag lists** come from the upstream (the cache's own list when it cannot answer).

Every pull through the cache touches the digest's usage record, as a ``HEAD`` of a pushed blob
does, so garbage collection spares what is in use and pruning (:mod:`.prune`) removes the least
recently pulled first. Cached manifests are stored like pushed ones, minus the check that their
blobs are present: a cache holds a manifest before (or without) its layers.
"""

from __future__ import annotations

import json
import weakref
from typing import TYPE_CHECKING, Callable, TypeVar

from ..content import Page, RegistryContent, ServedBlob, StoredManifest
from ..content.paths import revision_key, tags_prefix
from ..digests import Digest, digest_bytes, parse_digest
from ..errors import (
    BlobUnknown,
    DigestInvalid,
    ManifestInvalid,
    ManifestUnknown,
    NameUnknown,
    RegistryError,
    UpstreamFailed,
)
from ..manifests import Manifest, parse_manifest
from ..references import Reference
from ..storage.base import BlobReader, KeyNotFound
from .fills import LiveReader
from .upstream import UpstreamError

if TYPE_CHECKING:
    from .mirrors import MirrorRoute

__all__ = ["MirroredContent"]

T = TypeVar("T")


def _close_unclaimed(unclaimed: list[LiveReader]) -> None:
    """A live stream the request never opened (it answered an error instead) stops being fed."""
    for reader in unclaimed:
        reader.close()


class MirroredContent(RegistryContent):
    """The content of one mirrored repository, for one request (see the module docstring)."""

    def __init__(self, base: RegistryContent, route: "MirrorRoute", method: str) -> None:
        super().__init__(base.storage, max_manifest_size=base.max_manifest_size, usage=base.usage,
                         mount_without_from=base.blobs.mount_without_from)
        self.base = base
        self.route = route
        self.method = method
        self._unclaimed: list[LiveReader] = []

    @property
    def _upstream_name(self) -> str:
        return self.route.upstream_name

    # -- blobs ----------------------------------------------------------------------------------

    def serve_blob(self, name: str, digest: Digest, *, touch: bool = False,
                   redirect: bool = False) -> ServedBlob:
        """The blob: cached (and touched), its size from a ``HEAD`` upstream, or the live stream of its fill.

        A blob being filled is streamed, never redirected to: the storage does not hold it yet.
        """
        try:
            return super().serve_blob(name, digest, touch=True, redirect=redirect)
        except BlobUnknown:
            pass
        runtime = self.route.runtime
        if self.method == "HEAD":
            size = self._upstream(lambda: runtime.upstream.head_blob(self._upstream_name, str(digest)),
                                  BlobUnknown, {"digest": str(digest)})
            return ServedBlob(digest, size)
        outcome = runtime.fills.fetch(self.base, runtime.upstream, name, self._upstream_name, digest,
                                      fill_wait=runtime.mirror.fill_wait)
        if outcome.reader is None:
            return super().serve_blob(name, digest, touch=True, redirect=redirect)
        live = outcome.reader
        self._unclaimed.append(live)
        weakref.finalize(self, _close_unclaimed, self._unclaimed)
        return ServedBlob(digest, outcome.size, None, lambda offset: self._claim(live, offset))

    def _claim(self, reader: LiveReader, offset: int) -> BlobReader:
        """The live stream this request joined, from ``offset``; the request now closes it."""
        if reader in self._unclaimed:
            self._unclaimed.remove(reader)
        reader.seek(offset)
        return reader

    # -- manifests ------------------------------------------------------------------------------

    def stat_manifest(self, name: str, reference: Reference, *, touch: bool = False) -> StoredManifest:
        """A ``HEAD``: the manifest from the cache (always touched: a pull relies on it) or the upstream."""
        return self._manifest(name, reference)

    def get_manifest(self, name: str, reference: Reference) -> StoredManifest:
        """A ``GET``: as :meth:`stat_manifest`, with the manifest's bytes."""
        stored = self._manifest(name, reference)
        if stored.body is not None:
            return stored
        return super().get_manifest(name, stored.digest)

    def _manifest(self, name: str, reference: Reference) -> StoredManifest:
        runtime = self.route.runtime
        if isinstance(reference, Digest):
            local = self._cached(name, reference)
            if local is not None:
                return local
            key = ("manifest", runtime.upstream.url, self._upstream_name, str(reference))
            return runtime.flights.run(key, lambda: self._fetch_manifest(name, reference, None))
        local_tag = self._local_tag(name, reference)
        if local_tag is not None:
            stored, checked = local_tag
            if runtime.clock() - checked < runtime.mirror.tag_ttl:
                touched = self._cached(name, stored.digest)
                if touched is not None:
                    return touched
        key = ("tag", runtime.upstream.url, self._upstream_name, reference)
        return runtime.flights.run(key, lambda: self._revalidate(name, reference))

    def _cached(self, name: str, digest: Digest) -> StoredManifest | None:
        """The cached manifest ``digest`` of ``name``, touched (a pull relies on it); ``None`` if absent."""
        try:
            return super().stat_manifest(name, digest, touch=True)
        except ManifestUnknown:
            return None

    def _local_tag(self, name: str, tag: str) -> tuple[StoredManifest, float] | None:
        """The cached tag and when the upstream last confirmed it; ``None`` if absent or dangling."""
        try:
            doc = json.loads(self.storage.read(tags_prefix(name) + tag))
            stored = StoredManifest(parse_digest(doc["digest"]), doc["mediaType"], doc["size"])
            self.storage.size(revision_key(name, stored.digest))
        except (KeyNotFound, ValueError, KeyError, TypeError, RegistryError):
            return None
        checked = doc.get("checked")
        return stored, float(checked) if isinstance(checked, (int, float)) else 0.0

    def _revalidate(self, name: str, tag: str) -> StoredManifest:
        """Ask the upstream what ``tag`` is now; fall back to the cache when it cannot say."""
        runtime = self.route.runtime
        local = self._local_tag(name, tag)
        try:
            head = runtime.upstream.head_manifest(self._upstream_name, tag)
            digest = _digest_or_none(head.digest)
            if digest is not None:
                cached = self._cached(name, digest)
                if cached is not None:
                    self._write_tag(name, tag, cached)
                    return cached
            return self._fetch_manifest(name, digest or tag, tag)
        except UpstreamError as exc:
            if exc.not_found:
                if local is not None:
                    self._drop_tag(name, tag, local[0].digest)
                raise self._error(exc, ManifestUnknown, {"tag": tag}) from None
            if local is not None:
                cached = self._cached(name, local[0].digest)
                if cached is not None:
                    runtime.log.warning(
                        "serving %s:%s from the cache (confirmed %.0fs ago): the upstream failed: %s",
                        name, tag, runtime.clock() - local[1], exc)
                    return cached
            raise self._error(exc, ManifestUnknown, {"tag": tag}) from None

    def _fetch_manifest(self, name: str, reference: Reference, tag: str | None) -> StoredManifest:
        """``GET`` a manifest from the upstream, verify it, store it (and ``tag``); upstream errors raise."""
        runtime = self.route.runtime
        expected = reference if isinstance(reference, Digest) else None
        fetched = self._upstream(
            lambda: runtime.upstream.get_manifest(self._upstream_name, str(reference), self.max_manifest_size),
            ManifestUnknown, {"reference": str(reference)})
        announced = _digest_or_none(fetched.digest)
        algorithm = expected.algorithm if expected else announced.algorithm if announced else "sha256"
        digest = digest_bytes(fetched.body, algorithm)
        for claimed in (expected, announced):
            if claimed is not None and claimed.algorithm == algorithm and claimed != digest:
                raise UpstreamFailed(
                    {"expected": str(claimed), "actual": str(digest)},
                    message=f"{runtime.upstream.url} sent a manifest that does not match its digest; "
                            "nothing was stored")
        try:
            manifest = parse_manifest(fetched.body, fetched.media_type)
        except (ManifestInvalid, DigestInvalid) as exc:
            raise UpstreamFailed({"reference": str(reference)},
                                 message=f"{runtime.upstream.url} sent a manifest this registry cannot "
                                         f"serve: {exc.message}") from None
        self._store_manifest(name, digest, fetched.body, manifest, tag)
        return StoredManifest(digest, manifest.media_type, len(fetched.body), fetched.body)

    def _store_manifest(self, name: str, digest: Digest, body: bytes, manifest: Manifest,
                        tag: str | None) -> None:
        """Store a manifest as a push does, without requiring its blobs (a cache fetches them later)."""
        self.usage.touch(digest)  # before writing: a sweep of older bytes ends first
        self.manifests.write_revision(name, digest, body, manifest)
        if tag is not None:
            self._write_tag(name, tag, StoredManifest(digest, manifest.media_type, len(body)))

    def _write_tag(self, name: str, tag: str, stored: StoredManifest) -> None:
        """Point ``tag`` at ``stored``, confirmed now; ``pushed`` stays while the digest does."""
        now = self.route.runtime.clock()
        key = tags_prefix(name) + tag
        pushed = now
        try:
            previous = json.loads(self.storage.read(key))
            if previous.get("digest") == str(stored.digest) and isinstance(previous.get("pushed"), (int, float)):
                pushed = previous["pushed"]
        except (KeyNotFound, ValueError, AttributeError):
            pass
        doc = {"digest": str(stored.digest), "mediaType": stored.media_type, "size": stored.size,
               "pushed": pushed, "checked": now}
        self.storage.write(key, json.dumps(doc).encode())

    def _drop_tag(self, name: str, tag: str, digest: Digest) -> None:
        """The upstream no longer has ``tag``: neither does the cache (its manifest stays for gc)."""
        self.manifests.untag(name, [tag], digest)

    # -- tags -----------------------------------------------------------------------------------

    def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """The upstream's tag list; the cache's own when the upstream cannot answer."""
        runtime = self.route.runtime
        try:
            items, more = runtime.upstream.tags(self._upstream_name, n, last)
            return Page(items, more)
        except UpstreamError as exc:
            if exc.not_found:
                raise self._error(exc, NameUnknown, {"name": name}) from None
            try:
                page = super().tags(name, n, last)
            except NameUnknown:
                raise self._error(exc, NameUnknown, {"name": name}) from None
            runtime.log.warning("listing the tags of %s from the cache: the upstream failed: %s", name, exc)
            return page

    # -- upstream errors ------------------------------------------------------------------------

    def _upstream(self, call: Callable[[], T], unknown: type[RegistryError], detail: dict[str, str]) -> T:
        try:
            return call()
        except UpstreamError as exc:
            raise self._error(exc, unknown, detail) from None

    def _error(self, exc: UpstreamError, unknown: type[RegistryError], detail: dict[str, str]) -> RegistryError:
        return self.route.runtime.error(exc, unknown, detail)


def _digest_or_none(text: str | None) -> Digest | None:
    if not text:
        return None
    try:
        return parse_digest(text.strip())
    except RegistryError:
        return None
