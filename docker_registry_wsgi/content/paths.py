"""Where the registry's content lives in its storage: the one key layout (distribution's ``paths.go``).

All keys are below the storage's root::

    blobs/<alg>/<hex[:2]>/<hex>                          blob bytes, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>              link: the blob is in this repository
    repositories/<name>/_manifests/revisions/<alg>/<hex> link to a manifest: {"mediaType", "size", ...}
    repositories/<name>/_manifests/tags/<tag>            {"digest", "mediaType", "size", "pushed"} of the tagged manifest
    repositories/<name>/_referrers/<alg>/<hex>/<alg>:<hex>  descriptor of a manifest whose subject is <alg>:<hex>
    catalog/<name with "/" as "+">                       the repository exists

Upload sessions are the storage's own (see :meth:`~docker_registry_wsgi.storage.Storage.create_upload`).
Garbage collection, scrubbing and pruning read the same layout through these functions.
"""

from __future__ import annotations

from ..digests import Digest
from ..storage.base import KeyNotFound, Storage

__all__ = [
    "blob_key",
    "repo",
    "layer_key",
    "revision_key",
    "tags_prefix",
    "referrers_prefix",
    "catalog_key",
    "LEGACY_UPLOAD_PREFIXES",
    "exists",
]


def blob_key(digest: Digest) -> str:
    """The key of a blob's bytes, shared by every repository that links it."""
    return f"blobs/{digest.algorithm}/{digest.hex[:2]}/{digest.hex}"


def repo(name: str) -> str:
    """The folder of repository ``name``."""
    return f"repositories/{name}"


def layer_key(name: str, digest: Digest) -> str:
    """The link that puts blob ``digest`` in repository ``name``."""
    return f"{repo(name)}/_layers/{digest.algorithm}/{digest.hex}"


def revision_key(name: str, digest: Digest) -> str:
    """The link to manifest ``digest`` in repository ``name``."""
    return f"{repo(name)}/_manifests/revisions/{digest.algorithm}/{digest.hex}"


def tags_prefix(name: str) -> str:
    """The folder of repository ``name``'s tags (a tag's key is this and the tag)."""
    return f"{repo(name)}/_manifests/tags/"


def referrers_prefix(name: str, subject: Digest) -> str:
    """The folder of the descriptors of manifests in ``name`` whose subject is ``subject``."""
    return f"{repo(name)}/_referrers/{subject.algorithm}/{subject.hex}/"


def catalog_key(name: str) -> str:
    """The key that marks repository ``name`` in the catalog."""
    return "catalog/" + name.replace("/", "+")


#: Prefixes of upload state kept by earlier versions of this package; purging removes them.
LEGACY_UPLOAD_PREFIXES = ("uploads/", "staging/")


def exists(storage: Storage, key: str) -> bool:
    """Whether ``key`` is in ``storage`` (one ``size`` call)."""
    try:
        storage.size(key)
    except KeyNotFound:
        return False
    return True
