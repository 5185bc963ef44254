"""Manifest media types, parsing and the descriptors a manifest refers to.

Knows the four manifest formats the registry accepts (OCI image manifest and index, Docker
schema2 manifest and manifest list), refuses schema1 and anything else with MANIFEST_INVALID, and
extracts what the registry must check or index: referenced blobs, child manifests, ``subject``.

The body must be I-JSON (RFC 7493): UTF-8 (RFC 8259 section 8.1), no ``NaN``/``Infinity``, no
duplicate member names, no lone surrogates; the typed fields of the image spec must have their
types (``schemaVersion`` the integer 2, ``size`` an int64 count, string-string annotations).
Anything else is MANIFEST_INVALID: the registry stores manifests byte for byte, so a manifest
that other parsers would read differently must not get in.
"""

from __future__ import annotations

import binascii
import json
from base64 import b64decode
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
#: oci-image-spec-descriptor.md: ``size`` is an int64 (and a count of bytes, so not negative).
MAX_SIZE = 2**63 - 1


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


def _invalid(where: str, message: str) -> ManifestInvalid:
    return ManifestInvalid({"field": where}, message=message)


def _string_map(value: Any, where: str) -> dict[str, str]:
    """An OPTIONAL string-string map (annotations.md "Rules"); ``None`` reads as empty."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _invalid(where, f"{where} is not an object")
    for key, item in value.items():
        if not isinstance(item, str):
            raise _invalid(f"{where}.{key[:100]}", f"{where} values must be strings")
    return value


def _string_list(value: Any, where: str) -> None:
    if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
        raise _invalid(where, f"{where} is not a list of strings")


def _optional_string(value: Any, where: str) -> None:
    if value is not None and not isinstance(value, str):
        raise _invalid(where, f"{where} is not a string")


def _platform(value: Any, where: str) -> None:
    """oci-image-spec-image-index.md ``platform``: an object of strings and string lists."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise _invalid(where, "platform is not an object")
    for key in ("architecture", "os", "os.version", "variant"):
        _optional_string(value.get(key), f"{where}.{key}")
    for key in ("os.features", "features"):
        _string_list(value.get(key), f"{where}.{key}")


def _descriptor(value: Any, where: str) -> Descriptor:
    """One descriptor with the types of oci-image-spec-descriptor.md "Properties"."""
    if not isinstance(value, dict):
        raise _invalid(where, "descriptor is not an object")
    media_type, digest, size = value.get("mediaType"), value.get("digest"), value.get("size")
    if not isinstance(media_type, str) or not media_type:
        raise _invalid(where, "descriptor has no mediaType")
    # type() and not isinstance(): JSON true is a bool, which Python counts as an int.
    if type(size) is not int or not 0 <= size <= MAX_SIZE:
        raise _invalid(where, "descriptor size must be an integer from 0 to 2^63-1 (int64)")
    if not isinstance(digest, str):
        raise _invalid(where, "descriptor has no digest")
    try:
        parsed = parse_digest(digest)
    except DigestInvalid as exc:
        raise ManifestInvalid({"field": where, "digest": digest[:200]},
                              message=f"descriptor digest: {exc.message}") from None
    _string_list(value.get("urls"), f"{where}.urls")
    _string_map(value.get("annotations"), f"{where}.annotations")
    _optional_string(value.get("artifactType"), f"{where}.artifactType")
    _platform(value.get("platform"), f"{where}.platform")
    data = value.get("data")
    if data is not None:
        _optional_string(data, f"{where}.data")
        try:
            b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise _invalid(f"{where}.data", "descriptor data is not base64 (RFC 4648 section 4)") from None
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
    document = load_json(body)
    if not isinstance(document, dict):
        raise ManifestInvalid(message="manifest is not a JSON object")
    declared = document.get("mediaType")
    header = _base_type(content_type)
    if declared is not None and not isinstance(declared, str):
        raise ManifestInvalid({"field": "mediaType"}, message="mediaType is not a string")
    version = document.get("schemaVersion")
    if declared in DOCKER_SCHEMA1 or header in DOCKER_SCHEMA1 or (type(version) is int and version == 1):
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
    if type(version) is not int or version != 2:
        raise ManifestInvalid({"schemaVersion": version if type(version) in (int, float) else str(version)[:20]},
                              message="schemaVersion must be the integer 2")
    subject = document.get("subject")
    annotations = _string_map(document.get("annotations"), "annotations")
    _optional_string(document.get("artifactType"), "artifactType")
    artifact_type = document.get("artifactType") or None
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
        annotations=dict(annotations),
    )


def load_json(body: bytes) -> Any:
    """Parse ``body`` as I-JSON (RFC 7493) or raise MANIFEST_INVALID saying what is wrong.

    ``json.loads`` on bytes would guess UTF-16/32 and skip a UTF-8 BOM, and takes ``NaN`` and
    repeated keys; each of those is a document other registries and clients read differently.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ManifestInvalid({"offset": exc.start},
                              message="manifest is not UTF-8 encoded JSON (RFC 8259 section 8.1)") from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_object, parse_constant=_no_constant)
    except ValueError as exc:  # JSONDecodeError, a UTF-8 BOM, an integer of over 4300 digits
        raise ManifestInvalid({"reason": str(exc)[:200]}, message="manifest is not valid JSON") from None
    except RecursionError:
        raise ManifestInvalid(message="manifest JSON is nested too deeply") from None
    _check_strings(document)
    return document


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ManifestInvalid({"key": key[:100]},
                                      message="manifest JSON repeats a member name (RFC 7493 section 2.3)")
            seen.add(key)
    return document


def _no_constant(name: str) -> Any:
    raise ManifestInvalid({"value": name}, message=f"{name} is not a JSON number (RFC 8259 section 6)")


def _check_strings(document: Any) -> None:
    """Refuse lone surrogates (``"\\ud800"``): escapes of no Unicode character (RFC 7493 section 2.1)."""
    stack = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ManifestInvalid(message="manifest JSON holds a lone surrogate escape "
                                      "(RFC 7493 section 2.1)") from None
