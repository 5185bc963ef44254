"""Manifest media types, parsing and the descriptors a manifest refers to.

Knows the four manifest formats the registry accepts (OCI image manifest and index, Docker
schema2 manifest and manifest list), refuses schema1 and anything else with MANIFEST_INVALID, and
extracts what the registry must check or index: referenced blobs, child manifests, ``subject``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .digests import Digest, parse_digest
from .errors import DigestInvalid, ManifestInvalid

__all__ = [
    "OCI_MANIFEST",
    "OCI_INDEX",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "MANIFEST_TYPES",
    "INDEX_TYPES",
    "Descriptor",
    "Manifest",
    "parse_manifest",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES = INDEX_TYPES | IMAGE_TYPES


@dataclass(frozen=True)
class Descriptor:
    """A reference to content by digest (OCI image spec, descriptor.md)."""

    media_type: str
    digest: Digest
    size: int
    raw: dict[str, Any] = field(compare=False, repr=False)


@dataclass(frozen=True)
class Manifest:
    """What the registry needs to know of a pushed manifest."""

    media_type: str
    blobs: tuple[Descriptor, ...]
    children: tuple[Descriptor, ...]
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str]

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def required_blobs(self) -> tuple[Descriptor, ...]:
        """The blobs that must exist in the repository; foreign layers (with ``urls``) need not."""
        return tuple(d for d in self.blobs if not d.raw.get("urls"))


def _base_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def _descriptor(value: Any, where: str) -> Descriptor:
    if not isinstance(value, dict):
        raise ManifestInvalid({"field": where}, message="descriptor is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise ManifestInvalid({"field": where}, message="descriptor has no mediaType")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestInvalid({"field": where}, message="descriptor has no valid size")
    if not isinstance(digest, str):
        raise ManifestInvalid({"field": where}, message="descriptor has no digest")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid({"field": where, "digest": digest[:200]},
                              message=f"descriptor digest: {exc.message}") from None
    return Descriptor(media_type, parsed, size, value)


def _descriptors(document: dict[str, Any], key: str) -> tuple[Descriptor, ...]:
    values = document.get(key)
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ManifestInvalid({"field": key}, message=f"{key} is not a list")
    return tuple(_descriptor(v, f"{key}[{i}]") for i, v in enumerate(values))


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Validate a pushed manifest; its type is its ``mediaType`` field, else ``content_type``.

    Helm pushes OCI manifests without ``mediaType``, so the request's ``Content-Type`` stands in;
    when both are given they must agree (OCI distribution spec, "Pushing Manifests").
    """
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise ManifestInvalid(message="manifest is not valid JSON") from None
    except RecursionError:
        raise ManifestInvalid(message="manifest JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise ManifestInvalid(message="manifest is not a JSON object")
    declared = document.get("mediaType")
    header = _base_type(content_type)
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid({"field": "mediaType"}, message="mediaType is not a string")
    if declared in DOCKER_SCHEMA1 or header in DOCKER_SCHEMA1 or document.get("schemaVersion") == 1:
        raise ManifestInvalid(
            {"mediaType": declared or header},
            message="Docker schema1 manifests are not supported; push schema2 or OCI manifests",
        )
    media_type = declared or header
    if media_type not in MANIFEST_TYPES:
        if media_type is None and "manifests" in document:
            media_type = OCI_INDEX
        elif media_type is None and "config" in document:
            media_type = OCI_MANIFEST
        else:
            raise ManifestInvalid({"mediaType": media_type, "supported": sorted(MANIFEST_TYPES)},
                                  message="unsupported manifest media type")
    if declared and header and header in MANIFEST_TYPES and header != declared:
        raise ManifestInvalid({"mediaType": declared, "Content-Type": header},
                              message="Content-Type does not match the manifest's mediaType")
    if document.get("schemaVersion") != 2:
        raise ManifestInvalid({"schemaVersion": document.get("schemaVersion")},
                              message="schemaVersion must be 2")
    subject = document.get("subject")
    annotations = document.get("annotations") or {}
    if not isinstance(annotations, dict):
        raise ManifestInvalid({"field": "annotations"}, message="annotations is not an object")
    artifact_type = document.get("artifactType") or None
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestInvalid({"field": "artifactType"}, message="artifactType is not a string")
    if media_type in INDEX_TYPES:
        if not isinstance(document.get("manifests"), list):
            raise ManifestInvalid({"field": "manifests"}, message="an index needs manifests")
        blobs: tuple[Descriptor, ...] = ()
        children = _descriptors(document, "manifests")
    else:
        if "config" not in document:
            raise ManifestInvalid({"field": "config"}, message="an image manifest needs config")
        config = _descriptor(document["config"], "config")
        blobs = (config, *_descriptors(document, "layers"))
        children = ()
        if not artifact_type:  # "empty or missing" (distribution spec, "Listing Referrers")
            artifact_type = config.media_type
    return Manifest(
        media_type=media_type,
        blobs=blobs,
        children=children,
        subject=_descriptor(subject, "subject") if subject is not None else None,
        artifact_type=artifact_type,
        annotations={str(k): str(v) for k, v in annotations.items()},
    )
