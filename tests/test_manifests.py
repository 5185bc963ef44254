"""Manifest parsing: the four accepted media types, what is refused, and what the registry extracts.

Spec: oci-distribution-spec.md "Pushing Manifests" (Content-Type vs ``mediaType``, parameters
ignored), "Pushing Manifests with Subject" and "Listing Referrers" (``artifactType`` defaults to the
config's media type for an image manifest and is omitted for an index); oci-image-spec-manifest.md,
oci-image-spec-image-index.md, oci-image-spec-descriptor.md "Properties" (``urls``: foreign layers);
docker-manifest-v2-schema2.md (schema2 manifest and manifest list). The body is I-JSON (RFC 7493:
UTF-8 per RFC 8259 section 8.1, no NaN/Infinity, unique member names, no lone surrogates) and the
image spec's typed fields have their types: ``schemaVersion`` *int* 2, descriptor ``size`` *int64*,
``annotations`` *string-string map*, ``urls`` *array of strings*, ``data`` base64 (RFC 4648).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi.errors import ManifestInvalid
from docker_registry_wsgi.manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    parse_manifest,
)
from tests.unit_fixtures import FAST, digest_strings

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def descriptor(media_type: str, seed: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest_of(seed), "size": len(seed), **extra}


def image(media_type: str | None = OCI_MANIFEST, *, layers: int = 2, **extra: Any) -> dict[str, Any]:
    config_type = DOCKER_CONFIG if media_type == DOCKER_MANIFEST else CONFIG_TYPE
    layer_type = DOCKER_LAYER if media_type == DOCKER_MANIFEST else LAYER_TYPE
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": descriptor(config_type, b"config"),
        "layers": [descriptor(layer_type, b"layer%d" % i) for i in range(layers)],
        **extra,
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


def index(media_type: str | None = OCI_INDEX, *, children: int = 2, **extra: Any) -> dict[str, Any]:
    child_type = DOCKER_MANIFEST if media_type == DOCKER_MANIFEST_LIST else OCI_MANIFEST
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "manifests": [
            descriptor(child_type, b"child%d" % i, platform={"architecture": "amd64", "os": "linux"})
            for i in range(children)
        ],
        **extra,
    }
    if media_type is not None:
        doc["mediaType"] = media_type
    return doc


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def invalid(doc_or_bytes: Any, content_type: str | None = None) -> ManifestInvalid:
    data = doc_or_bytes if isinstance(doc_or_bytes, bytes) else body(doc_or_bytes)
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(data, content_type)
    assert info.value.code == "MANIFEST_INVALID" and info.value.status == 400
    return info.value


# -- the four media types -------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifests_are_accepted(media_type: str) -> None:
    """oci-image-spec-manifest.md / docker-manifest-v2-schema2.md: config + layers are the blobs."""
    doc = image(media_type)
    manifest = parse_manifest(body(doc), media_type)
    assert manifest.media_type == media_type and not manifest.is_index
    assert [str(d.digest) for d in manifest.blobs] == [doc["config"]["digest"]] + [
        layer["digest"] for layer in doc["layers"]
    ]
    assert [d.size for d in manifest.blobs] == [6, 6, 6]
    assert manifest.children == () and manifest.subject is None
    assert manifest.required_blobs() == manifest.blobs


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_indexes_are_accepted(media_type: str) -> None:
    """oci-image-spec-image-index.md / docker-manifest-v2-schema2.md "Manifest List": children, no blobs."""
    doc = index(media_type)
    manifest = parse_manifest(body(doc), media_type)
    assert manifest.media_type == media_type and manifest.is_index
    assert [str(d.digest) for d in manifest.children] == [m["digest"] for m in doc["manifests"]]
    assert manifest.blobs == () and manifest.required_blobs() == ()
    assert manifest.artifact_type is None


def test_media_type_sets() -> None:
    """The registry accepts exactly the four manifest types of the issue; two of them are indexes."""
    assert MANIFEST_TYPES == {OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST}
    assert INDEX_TYPES == {OCI_INDEX, DOCKER_MANIFEST_LIST}


def test_empty_layers_and_empty_index_are_valid() -> None:
    """spec "Pushing Manifests": the list of blobs MAY be empty (artifacts with only a config)."""
    assert len(parse_manifest(body(image(layers=0)), None).blobs) == 1
    assert parse_manifest(body(index(children=0)), None).children == ()


def test_layers_may_be_absent() -> None:
    """An artifact manifest without ``layers`` still names its config as a blob."""
    doc = image()
    del doc["layers"]
    assert len(parse_manifest(body(doc), OCI_MANIFEST).blobs) == 1


# -- schema1 and unknown types ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "doc,content_type",
    [
        ({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": [], "history": []}, None),
        ({"schemaVersion": 1, "name": "a", "tag": "b", "fsLayers": [], "signatures": []},
         "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        ({"schemaVersion": 1, "fsLayers": []}, "application/vnd.docker.distribution.manifest.v1+json"),
        ({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v1+json"}, None),
        (image(None), "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    ],
)
def test_schema1_is_refused_with_a_clear_message(doc: dict[str, Any], content_type: str | None) -> None:
    """docker-registry-http-api-v2.md "Pushing an Image Manifest": schema1 is not accepted; say so plainly."""
    error = invalid(doc, content_type)
    assert "schema1" in error.message and "schema2" in error.message


@pytest.mark.parametrize(
    "media_type",
    ["application/json", CONFIG_TYPE, "application/vnd.oci.artifact.manifest.v1+json", "text/plain"],
)
def test_unknown_media_types_are_refused(media_type: str) -> None:
    """spec "Pushing Manifests": only manifest types are manifests (not configs, not the dropped artifact type)."""
    doc = image(None)
    doc["mediaType"] = media_type
    assert invalid(doc, None).detail["mediaType"] == media_type
    assert invalid(doc, media_type).detail["mediaType"] == media_type


def test_media_type_must_be_a_string() -> None:
    """oci-image-spec-manifest.md: ``mediaType`` is a string."""
    for value in (1, ["x"], {"a": 1}, True):
        doc = image(None)
        doc["mediaType"] = value
        invalid(doc, OCI_MANIFEST)


# -- Content-Type and mediaType --------------------------------------------------------------------


@pytest.mark.parametrize("content_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_content_type_stands_in_for_a_missing_media_type(content_type: str) -> None:
    """spec "Pushing Manifests": Helm omits ``mediaType``; the request's Content-Type gives the type."""
    manifest = parse_manifest(body(image(None)), content_type)
    assert manifest.media_type == content_type


@pytest.mark.parametrize("content_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_content_type_stands_in_for_a_missing_index_media_type(content_type: str) -> None:
    """spec "Pushing Manifests": an index without ``mediaType`` takes its type from Content-Type."""
    manifest = parse_manifest(body(index(None)), content_type)
    assert manifest.media_type == content_type and manifest.is_index


def test_no_media_type_and_no_content_type_is_inferred_from_the_shape() -> None:
    """oci-image-spec-manifest.md: ``mediaType`` is optional in OCI; the fields tell image from index."""
    assert parse_manifest(body(image(None)), None).media_type == OCI_MANIFEST
    assert parse_manifest(body(index(None)), None).media_type == OCI_INDEX
    assert parse_manifest(body(image(None)), "").media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    "content_type",
    [f"{OCI_MANIFEST}; charset=utf-8", f" {OCI_MANIFEST} ", OCI_MANIFEST.upper(), f"{OCI_MANIFEST};q=1"],
)
def test_content_type_parameters_and_case_are_ignored(content_type: str) -> None:
    """spec "Pushing Manifests": the registry SHOULD ignore parameters on the Content-Type header."""
    assert parse_manifest(body(image(None)), content_type).media_type == OCI_MANIFEST
    assert parse_manifest(body(image()), content_type).media_type == OCI_MANIFEST


@pytest.mark.parametrize(
    "declared,header",
    [(OCI_MANIFEST, DOCKER_MANIFEST), (DOCKER_MANIFEST, OCI_MANIFEST), (OCI_INDEX, DOCKER_MANIFEST_LIST),
     (OCI_MANIFEST, OCI_INDEX)],
)
def test_media_type_and_content_type_must_agree(declared: str, header: str) -> None:
    """spec "Pushing Manifests": with a ``mediaType``, clients MUST send it as Content-Type."""
    doc = index(declared) if declared in INDEX_TYPES else image(declared)
    error = invalid(doc, header)
    assert error.detail == {"mediaType": declared, "Content-Type": header}


def test_image_media_type_needs_a_config_and_index_media_type_needs_manifests() -> None:
    """oci-image-spec-manifest.md (config REQUIRED) and image-index.md (manifests REQUIRED)."""
    assert invalid(index(None) | {"mediaType": OCI_MANIFEST}).detail == {"field": "config"}
    assert invalid(image(None) | {"mediaType": OCI_INDEX}).detail == {"field": "manifests"}
    assert invalid({"schemaVersion": 2}, None).detail["mediaType"] is None


# -- bad documents ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"not json", b"\xff\xfe{}", b'{"schemaVersion": 2,}', b"{'a': 1}", b"\x00", b"[1, 2"],
)
def test_bad_json_is_manifest_invalid(data: bytes) -> None:
    """spec "Pushing Manifests": a body that is not JSON is MANIFEST_INVALID, not a 500."""
    assert "JSON" in invalid(data).message


@pytest.mark.parametrize("doc", [[], [image()], "manifest", 2, None, True])
def test_non_object_is_manifest_invalid(doc: Any) -> None:
    """oci-image-spec-manifest.md: a manifest is a JSON object."""
    assert "object" in invalid(doc, OCI_MANIFEST).message


def test_deeply_nested_json_is_manifest_invalid() -> None:
    """Hostile input under the 4 MiB cap (spec "Pushing Manifests": size limit) must be a 4xx, never a 500."""
    invalid(b"[" * 100_000, OCI_MANIFEST)
    invalid(b'{"a":' * 100_000, OCI_MANIFEST)


@pytest.mark.parametrize("version", [None, 1.5, 3, "2", 2.0001, [2], True, 2.0, 1.0, False])
def test_schema_version_must_be_2(version: Any) -> None:
    """oci-image-spec-manifest.md: ``schemaVersion`` MUST be 2."""
    doc = image()
    if version is None:
        del doc["schemaVersion"]
    else:
        doc["schemaVersion"] = version
    invalid(doc, OCI_MANIFEST)


BAD_DESCRIPTORS = [
    "sha256:" + "a" * 64,
    None,
    [],
    {},
    {"digest": "sha256:" + "a" * 64, "size": 1},
    {"mediaType": "", "digest": "sha256:" + "a" * 64, "size": 1},
    {"mediaType": 1, "digest": "sha256:" + "a" * 64, "size": 1},
    {"mediaType": LAYER_TYPE, "size": 1},
    {"mediaType": LAYER_TYPE, "digest": 1, "size": 1},
    {"mediaType": LAYER_TYPE, "digest": "sha256:abc", "size": 1},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "A" * 64, "size": 1},
    {"mediaType": LAYER_TYPE, "digest": "md5:" + "a" * 32, "size": 1},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64, "size": -1},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64, "size": "1"},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64, "size": 1.0},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64, "size": True},
    {"mediaType": LAYER_TYPE, "digest": "sha256:" + "a" * 64, "size": None},
]


@pytest.mark.parametrize("bad", BAD_DESCRIPTORS)
@pytest.mark.parametrize("where", ["config", "layers", "manifests", "subject"])
def test_bad_descriptors_are_manifest_invalid(bad: Any, where: str) -> None:
    """oci-image-spec-descriptor.md "Properties": mediaType, digest and size are REQUIRED and typed."""
    if where == "manifests":
        doc = index()
        doc["manifests"].append(bad)
    elif where == "layers":
        doc = image()
        doc["layers"].insert(1, bad)
    else:
        doc = image()
        doc[where] = bad
    if where == "subject" and bad is None:
        return  # "subject": null means no subject
    error = invalid(doc, doc["mediaType"])
    assert error.detail["field"].startswith(where)
    if where == "layers":
        assert error.detail["field"] == "layers[1]"


@pytest.mark.parametrize("key,doc_fn", [("layers", image), ("manifests", index)])
@pytest.mark.parametrize("value", [{}, "x", 1, {"0": {}}])
def test_descriptor_lists_must_be_lists(key: str, doc_fn: Any, value: Any) -> None:
    """oci-image-spec-manifest.md / image-index.md: ``layers`` and ``manifests`` are arrays."""
    doc = doc_fn()
    doc[key] = value
    invalid(doc, doc["mediaType"])


def test_bad_digest_in_a_descriptor_says_where_and_why() -> None:
    """A precise detail helps a client author: which field, which digest, what was wrong."""
    doc = image()
    doc["layers"][0]["digest"] = "sha256:" + "a" * 63
    error = invalid(doc)
    assert error.detail == {"field": "layers[0]", "digest": "sha256:" + "a" * 63}
    assert error.message.startswith("descriptor digest")


def test_sha512_descriptors_are_accepted() -> None:
    """descriptor.md "Registered algorithms": sha512 digests in descriptors."""
    doc = image()
    doc["layers"][0]["digest"] = "sha512:" + hashlib.sha512(b"x").hexdigest()
    manifest = parse_manifest(body(doc), None)
    assert manifest.blobs[1].digest.algorithm == "sha512"


# -- foreign layers ----------------------------------------------------------------------------------


def test_foreign_layers_are_not_required() -> None:
    """oci-image-spec-descriptor.md "Properties" (``urls``): layers fetched elsewhere need not be pushed."""
    doc = image(DOCKER_MANIFEST, layers=3)
    doc["layers"][1] = descriptor(FOREIGN_LAYER, b"windows", urls=["https://example.com/layer.tar.gz"])
    manifest = parse_manifest(body(doc), DOCKER_MANIFEST)
    assert len(manifest.blobs) == 4
    required = [str(d.digest) for d in manifest.required_blobs()]
    assert digest_of(b"windows") not in required and len(required) == 3


def test_empty_urls_do_not_make_a_layer_foreign() -> None:
    """A layer with an empty ``urls`` list can only come from this registry, so it is required."""
    doc = image()
    doc["layers"][0]["urls"] = []
    assert len(parse_manifest(body(doc), None).required_blobs()) == 3


# -- subject, artifactType, annotations ("Listing Referrers") ----------------------------------------


def test_subject_is_extracted() -> None:
    """spec "Pushing Manifests with Subject": the registry processes ``subject`` (for OCI-Subject)."""
    subject = descriptor(OCI_MANIFEST, b"subject")
    manifest = parse_manifest(body(image(subject=subject)), None)
    assert manifest.subject is not None and str(manifest.subject.digest) == subject["digest"]
    assert manifest.subject.media_type == OCI_MANIFEST and manifest.subject.size == 7


def test_index_with_subject() -> None:
    """spec "Listing Referrers": an index may also refer to a subject."""
    subject = descriptor(OCI_MANIFEST, b"subject")
    manifest = parse_manifest(body(index(subject=subject)), None)
    assert manifest.subject is not None and manifest.artifact_type is None


def test_image_artifact_type_defaults_to_config_media_type() -> None:
    """spec "Listing Referrers": if ``artifactType`` is missing in an image manifest, use the config's mediaType."""
    doc = image()
    doc["config"]["mediaType"] = "application/vnd.example.sbom.v1"
    assert parse_manifest(body(doc), None).artifact_type == "application/vnd.example.sbom.v1"


def test_empty_artifact_type_defaults_to_config_media_type() -> None:
    """spec "Listing Referrers": if ``artifactType`` is *empty* or missing in an image manifest, use the config's."""
    doc = image(artifactType="")
    doc["config"]["mediaType"] = "application/vnd.example.sbom.v1"
    assert parse_manifest(body(doc), None).artifact_type == "application/vnd.example.sbom.v1"


def test_explicit_artifact_type_wins() -> None:
    """spec "Listing Referrers": the descriptor's artifactType is the manifest's ``artifactType`` if present."""
    doc = image(artifactType="application/vnd.example.signature.v1")
    assert parse_manifest(body(doc), None).artifact_type == "application/vnd.example.signature.v1"
    doc = index(artifactType="application/vnd.example.bundle.v1")
    assert parse_manifest(body(doc), None).artifact_type == "application/vnd.example.bundle.v1"


def test_index_without_artifact_type_has_none() -> None:
    """spec "Listing Referrers": if ``artifactType`` is missing in an index, it MUST be omitted."""
    assert parse_manifest(body(index()), None).artifact_type is None


@pytest.mark.parametrize("value", [1, ["a"], {"a": "b"}, True])
def test_artifact_type_must_be_a_string(value: Any) -> None:
    """oci-image-spec-manifest.md: ``artifactType`` is a string (a media type)."""
    invalid(image(artifactType=value))


def test_annotations_are_kept_for_referrers() -> None:
    """spec "Listing Referrers": descriptors MUST include the manifest's annotations."""
    notes = {"org.opencontainers.image.created": "2022-01-01T14:42:55Z", "org.example.sbom.format": "json"}
    assert parse_manifest(body(image(annotations=notes)), None).annotations == notes
    assert parse_manifest(body(image()), None).annotations == {}


@pytest.mark.parametrize("value", [[], ["a"], "x", 1, 0, "", False, {"a": 1}, {"a": None}, {"a": ["b"]}, {"a": {}}])
def test_annotations_must_be_a_string_string_map(value: Any) -> None:
    """oci-image-spec-manifest.md: ``annotations`` is a string-string map; an empty list or a
    number is not (they were read as "no annotations", and values were turned into strings)."""
    assert invalid(image(annotations=value)).detail["field"].startswith("annotations")


# -- properties ---------------------------------------------------------------------------------------


@st.composite
def image_documents(draw: st.DrawFn) -> dict[str, Any]:
    media_type = draw(st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST, None]))
    layers = draw(st.lists(digest_strings(), max_size=6))
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "config": {"mediaType": CONFIG_TYPE, "digest": draw(digest_strings()), "size": draw(st.integers(0, 2**53))},
        "layers": [{"mediaType": LAYER_TYPE, "digest": d, "size": i} for i, d in enumerate(layers)],
    }
    if media_type:
        doc["mediaType"] = media_type
    return doc


@FAST
@given(doc=image_documents(), indent=st.sampled_from([None, 0, 2]))
def test_generated_image_manifests_list_their_blobs_in_order(doc: dict[str, Any], indent: int | None) -> None:
    """oci-image-spec-manifest.md: config then layers, in order, whatever the JSON formatting."""
    manifest = parse_manifest(json.dumps(doc, indent=indent).encode(), None)
    assert [str(d.digest) for d in manifest.blobs] == [doc["config"]["digest"]] + [
        layer["digest"] for layer in doc["layers"]
    ]
    assert manifest.media_type == doc.get("mediaType", OCI_MANIFEST)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
manifest_like = st.fixed_dictionaries(
    {},
    optional={
        "schemaVersion": st.sampled_from([1, 2, "2", None]),
        "mediaType": st.sampled_from(sorted(MANIFEST_TYPES) + [None, 1, "x"]),
        "config": json_values,
        "layers": json_values,
        "manifests": json_values,
        "subject": json_values,
        "annotations": json_values,
        "artifactType": json_values,
    },
)


@FAST
@given(doc=st.one_of(manifest_like, json_values),
       content_type=st.sampled_from([None, OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, "text/plain"]))
def test_any_json_is_accepted_or_manifest_invalid(doc: Any, content_type: str | None) -> None:
    """Hostile manifests: whatever the JSON, the outcome is a parsed manifest or MANIFEST_INVALID."""
    try:
        manifest = parse_manifest(body(doc), content_type)
    except ManifestInvalid:
        return
    assert manifest.media_type in MANIFEST_TYPES


@FAST
@given(data=st.binary(max_size=200))
def test_any_bytes_are_accepted_or_manifest_invalid(data: bytes) -> None:
    """Hostile manifests: arbitrary bytes never raise anything but MANIFEST_INVALID."""
    try:
        parse_manifest(data, None)
    except ManifestInvalid:
        pass


# -- I-JSON (RFC 7493) and the image spec's types -------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-8-sig"])
def test_body_must_be_utf8_without_bom(encoding: str) -> None:
    """RFC 8259 8.1: JSON between systems MUST be UTF-8 (a BOM MAY be refused). ``json.loads``
    on bytes guessed UTF-16/32 and skipped the BOM, so such manifests were stored as sent."""
    error = invalid(json.dumps(image()).encode(encoding), OCI_MANIFEST)
    assert "UTF-8" in error.message or "JSON" in error.message


def test_latin1_body_is_not_utf8() -> None:
    """RFC 8259 8.1: a Latin-1 annotation is not UTF-8; the error gives the offset of the bad byte."""
    data = body(image(annotations={"a": "caf\u00e9"})).replace(b"caf\\u00e9", "café".encode("latin-1"))
    error = invalid(data)
    assert error.detail == {"offset": data.index(b"\xe9")} and "UTF-8" in error.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("where", ["size", "unknown", "annotation-list"])
def test_nan_and_infinity_are_not_json(constant: str, where: str) -> None:
    """RFC 8259 6: ``NaN``/``Infinity`` are not JSON numbers (Python's parser took them)."""
    doc = image()
    if where == "size":
        doc["config"]["size"] = "@"
    elif where == "unknown":
        doc["x-extra"] = "@"
    else:
        doc["x-extra"] = [1, "@"]
    data = body(doc).replace(b'"@"', constant.encode())
    assert invalid(data).detail == {"value": constant}


@pytest.mark.parametrize("path", [(), ("config",), ("layers", 0), ("annotations",)])
def test_duplicate_member_names_are_refused(path: tuple[Any, ...]) -> None:
    """RFC 7493 2.3: member names MUST be unique. Parsers differ on which duplicate wins (Python and
    Go the last, others the first), so a registry checking one copy could serve the other."""
    doc = image(annotations={"a": "b"})
    target = doc
    for step in path:
        target = target[step]
    key = next(iter(target))
    data = body(doc)
    marker = json.dumps(target)[:-1]  # the object's text up to its closing brace
    assert data.count(marker.encode()) == 1
    data = data.replace(marker.encode(), (marker + ", " + json.dumps(key) + ": " + json.dumps(target[key])).encode())
    assert invalid(data).detail == {"key": key}


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\ud83d x"])
@pytest.mark.parametrize("where", ["value", "key", "list"])
def test_lone_surrogates_are_refused(escape: str, where: str) -> None:
    """RFC 7493 2.1: strings MUST NOT hold escapes of surrogates that make no character; a pair
    (an emoji) is fine."""
    doc = image(annotations={"k": "@"} if where == "value" else {"@": "v"})
    if where == "list":
        doc["layers"][0]["urls"] = ["@"]
    data = body(doc).replace(b"@", escape.encode())
    assert "surrogate" in invalid(data).message
    assert parse_manifest(body(doc).replace(b"@", b"\\ud83d\\ude00"), None).media_type == OCI_MANIFEST


@pytest.mark.parametrize("size", [0, 1, 2**53 + 1, 2**63 - 1])
def test_sizes_up_to_int64_max_are_accepted(size: int) -> None:
    """oci-image-spec-descriptor.md: ``size`` is an int64; every non-negative one is accepted, beyond
    2^53 too (the registry reads it as an integer, not a float)."""
    doc = image()
    doc["layers"][0]["size"] = size
    assert parse_manifest(body(doc), None).blobs[1].size == size


@pytest.mark.parametrize("size", [2**63, 2**64, 10**30, -1, -(2**63), 1.5, 1.0, 1e3, True, False, "1", None, [1], {}])
@pytest.mark.parametrize("where", ["config", "layers", "subject"])
def test_sizes_beyond_int64_negative_or_not_integers_are_refused(size: Any, where: str) -> None:
    """oci-image-spec-descriptor.md: ``size`` is an int64 count of bytes: not above 2^63-1, not
    negative, not 1.5 nor 1.0 (JSON numbers with a fraction), not ``true``."""
    doc = image(subject=descriptor(OCI_MANIFEST, b"subject"))
    target = doc["layers"][0] if where == "layers" else doc[where]
    target["size"] = size
    assert invalid(doc).detail["field"].startswith(where)


def test_size_with_too_many_digits_is_invalid_json() -> None:
    """Python refuses integers of over 4300 digits; that is MANIFEST_INVALID, not a 500."""
    data = body(image()).replace(b'"size": 6', b'"size": ' + b"9" * 5000, 1)
    assert "JSON" in invalid(data).message


BAD_DESCRIPTOR_FIELDS = [
    ("urls", "https://example.com/layer"),
    ("urls", [1]),
    ("urls", {"a": "b"}),
    ("annotations", ["a"]),
    ("annotations", {"a": 1}),
    ("annotations", {"a": True}),
    ("artifactType", 1),
    ("artifactType", ["a"]),
    ("data", 1),
    ("data", "not base64!"),
    ("data", "e30"),  # missing padding
    ("platform", "linux/amd64"),
    ("platform", {"architecture": 1, "os": "linux"}),
    ("platform", {"architecture": "amd64", "os": ["linux"]}),
    ("platform", {"architecture": "amd64", "os": "linux", "os.features": "win32k"}),
]


@pytest.mark.parametrize("field,value", BAD_DESCRIPTOR_FIELDS)
@pytest.mark.parametrize("where", ["config", "layers", "manifests", "subject"])
def test_descriptor_fields_have_their_types(field: str, value: Any, where: str) -> None:
    """oci-image-spec-descriptor.md "Properties" and image-index.md ``platform``: the OPTIONAL
    fields have types too."""
    doc = index(subject=descriptor(OCI_MANIFEST, b"s")) if where == "manifests" else image(
        subject=descriptor(OCI_MANIFEST, b"s"))
    target = doc[where][0] if where in ("layers", "manifests") else doc[where]
    target[field] = value
    assert invalid(doc).detail["field"].startswith(where)


def test_well_typed_optional_descriptor_fields_are_accepted() -> None:
    """The same fields with their types: accepted, and ``data`` is kept as sent."""
    layer = descriptor(LAYER_TYPE, b"{}", urls=["https://example.com/l"], annotations={"a": "b"},
                       artifactType="application/x-a", data="e30=")
    doc = index(subject=descriptor(OCI_MANIFEST, b"s"))
    doc["manifests"][0]["platform"] = {"architecture": "amd64", "os": "windows", "os.version": "10.0",
                                       "os.features": ["win32k"], "variant": "v8", "features": []}
    assert parse_manifest(body(image(layers=0) | {"layers": [layer]}), None).blobs[1].raw == layer
    assert len(parse_manifest(body(doc), None).children) == 2


#: Values of the wrong JSON type or range, per field of the image spec.
_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5)
_json = st.recursive(_json_scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                     max_leaves=6)
BAD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "schemaVersion": _json.filter(lambda v: not (type(v) is int and v == 2)),
    "size": st.integers(max_value=-1) | st.integers(min_value=2**63, max_value=2**400)
    | _json.filter(lambda v: type(v) is not int),
    "annotations": _json.filter(lambda v: v is not None and not isinstance(v, dict))
    | st.dictionaries(st.text(max_size=4), _json.filter(lambda v: not isinstance(v, str)), min_size=1, max_size=3),
    "artifactType": _json.filter(lambda v: v is not None and not isinstance(v, str)),
    "urls": _json.filter(lambda v: v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v))),
    "data": _json.filter(lambda v: v is not None and not isinstance(v, str)) | st.sampled_from(["=", "a", "ab=c", "@@@@"]),
    "platform": _json.filter(lambda v: v is not None and not isinstance(v, dict))
    | st.fixed_dictionaries({"architecture": _json.filter(lambda v: v is not None and not isinstance(v, str))}),
}


@st.composite
def bad_documents(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid image manifest or index with one field set to a value of the wrong type or range."""
    is_index = draw(st.booleans())
    doc = index(draw(st.sampled_from([OCI_INDEX, DOCKER_MANIFEST_LIST]))) if is_index else image(
        draw(st.sampled_from([OCI_MANIFEST, DOCKER_MANIFEST])))
    doc["subject"] = descriptor(OCI_MANIFEST, b"subject")
    field = draw(st.sampled_from(sorted(BAD_VALUES)))
    value = draw(BAD_VALUES[field])
    if field == "schemaVersion" or field in ("annotations", "artifactType") and draw(st.booleans()):
        doc[field] = value
        return doc, field
    where = draw(st.sampled_from(["manifests", "subject"] if is_index else ["config", "layers", "subject"]))
    target = doc[where][draw(st.integers(0, len(doc[where]) - 1))] if where in ("manifests", "layers") else doc[where]
    target[field] = value
    return doc, where


@FAST
@given(case=bad_documents(), indent=st.sampled_from([None, 2]))
def test_any_badly_typed_field_is_manifest_invalid(case: tuple[dict[str, Any], str], indent: int | None) -> None:
    """Hypothesis: one field of a valid manifest set to a value of the wrong type or range is always
    MANIFEST_INVALID (400) naming that field, never accepted and never another exception."""
    doc, where = case
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(json.dumps(doc, indent=indent).encode(), None)
    assert info.value.status == 400 and info.value.code == "MANIFEST_INVALID"
    detail = info.value.detail
    assert detail.get("field", "").startswith(where) or where == "schemaVersion" and "schemaVersion" in detail


@FAST
@given(doc=image_documents(), encoding=st.sampled_from(["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-be",
                                                        "utf-8-sig"]))
def test_any_manifest_in_another_encoding_is_manifest_invalid(doc: dict[str, Any], encoding: str) -> None:
    """Hypothesis: a valid manifest encoded other than plain UTF-8 is refused (RFC 8259 8.1)."""
    assert parse_manifest(json.dumps(doc).encode(), None).media_type in MANIFEST_TYPES
    invalid(json.dumps(doc).encode(encoding))
