"""skopeo (containers/image) against the standalone registry: push, list, inspect, pull, mount, delete.

The image is a multi-platform OCI image built offline (:mod:`tests.support.oci_images`): an image
index of linux/amd64 and linux/arm64 manifests, each with a config and two gzip layers. Spec
references are to ``oci-distribution-spec.md`` (OCI Distribution Spec v1.1) in
/work/shared/reference/.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.support.clients import ClientError, Skopeo, requests_in
from tests.support.oci_images import (
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
    OciImage,
    assert_same_image,
    build_multiplatform_image,
    read_blob,
    resolve_tag,
    sha256_digest,
)
from tests.support.servers import RegistryServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.e2e

PUSHED = "e2e/multi"


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, oci_image: OciImage) -> str:
    """Push the image once with ``skopeo copy --all --preserve-digests`` to ``e2e/multi:v1``.

    Push flow: "Pushing blobs" (POST session, PATCH, PUT ?digest=) and "Pushing Manifests"
    (children first, then the index), OCI Distribution Spec, "Push".
    """
    skopeo = Skopeo(require_tool("skopeo", "apt-get install -y skopeo"), registry.hostport)
    try:
        skopeo.copy("--all", "--preserve-digests", oci_image.reference, skopeo.docker(PUSHED, "v1"))
    except ClientError as exc:
        raise ClientError(f"{exc}\n--- registry log ---\n{registry.log_text()[-8000:]}") from None
    return PUSHED


def test_push_serves_index_byte_for_byte(pushed: str, oci_image: OciImage, skopeo: Skopeo,
                                          http_get: Callable[..., Any]) -> None:
    """The tag serves the pushed index unchanged, with its digest and its media type.

    Spec "Pulling manifests": the registry returns the manifest as pushed, ``Docker-Content-Digest``
    is its digest, and (brief) ``Content-Type`` is the manifest's own ``mediaType``.
    """
    assert skopeo.inspect_raw(skopeo.docker(pushed, "v1")) == oci_image.blob_bytes(oci_image.index.digest)
    response = http_get(f"/v2/{pushed}/manifests/v1", headers={"Accept": f"{OCI_INDEX}, {OCI_MANIFEST}"})
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    assert response.headers["Docker-Content-Digest"] == oci_image.index.digest
    assert response.content == oci_image.blob_bytes(oci_image.index.digest)


@pytest.mark.parametrize("platform", ["linux/amd64", "linux/arm64"])
def test_push_serves_each_platform(pushed: str, oci_image: OciImage, skopeo: Skopeo, platform: str) -> None:
    """Each platform manifest is served by digest, and its config and layers are what skopeo sees.

    Spec "Pulling manifests" (by digest reference) and "Pulling blobs" (the config, read by
    ``skopeo inspect --config``).
    """
    os_name, arch = platform.split("/")
    manifest = oci_image.manifests[platform]
    by_digest = skopeo.docker(pushed, manifest.digest)
    assert skopeo.inspect_raw(by_digest) == oci_image.blob_bytes(manifest.digest)
    config = oci_image.configs[platform]
    raw_config = skopeo.inspect_raw(skopeo.docker(pushed, "v1"), "--config", f"--override-arch={arch}",
                                    f"--override-os={os_name}")
    assert raw_config == oci_image.blob_bytes(config.digest)
    info = skopeo.inspect(skopeo.docker(pushed, "v1"), f"--override-arch={arch}", f"--override-os={os_name}")
    assert info["Architecture"] == arch
    assert info["Digest"] == oci_image.index.digest
    assert info["Layers"] == [layer.digest for layer in oci_image.layers[platform]]


def test_list_tags_in_lexical_order(registry: RegistryServer, oci_image: OciImage, skopeo: Skopeo) -> None:
    """``skopeo list-tags`` sees every pushed tag, in lexical order.

    Spec "Content discovery / Listing Tags": the list is in lexical order.
    """
    tags = ["v1", "latest", "1.0", "v1.10", "v1.9"]
    for tag in tags:
        skopeo.copy("--all", "--preserve-digests", oci_image.reference, skopeo.docker("e2e/tags", tag))
    listed = skopeo.list_tags("e2e/tags")
    assert sorted(listed) == sorted(tags)
    assert listed == sorted(tags), "spec: tags are returned in lexical order"


def test_copy_back_byte_for_byte(pushed: str, oci_image: OciImage, skopeo: Skopeo, tmp_path: Path) -> None:
    """``skopeo copy --all --preserve-digests`` from the registry to a new layout gives identical blobs.

    Spec "Pull": manifests and blobs come back as pushed; digests are preserved.
    """
    skopeo.copy("--all", "--preserve-digests", skopeo.docker(pushed, "v1"), f"oci:{tmp_path / 'back'}:v1")
    compared = assert_same_image(oci_image.path, "v1", tmp_path / "back", "v1")
    assert compared == len(oci_image.blobs)


def test_copy_to_other_repository_mounts_blobs(pushed: str, oci_image: OciImage, skopeo: Skopeo,
                                                http_get: Callable[..., Any], tmp_path: Path) -> None:
    """Copying within the registry mounts the blobs from the source repository instead of uploading.

    Spec "Mounting a blob from another repository": ``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<other>``
    answers 201 and the blob becomes visible in ``<name>``. containers/image only tries a mount
    for blobs its blob-info cache knows to be in another repository of the same registry (the
    push by the ``pushed`` fixture recorded them); it never tries it for config blobs, which it
    uploads again.
    """
    target = "e2e/mounted/copy"
    result = skopeo.copy("--all", "--preserve-digests", skopeo.docker(pushed, "v1"), skopeo.docker(target, "v1"))
    requests = requests_in(result.stderr)
    shown = "requests were:\n" + "\n".join(requests)
    layer_digests = {layer.digest for layers in oci_image.layers.values() for layer in layers}
    mounts = [r for r in requests if r.startswith("POST ") and f"/v2/{target}/blobs/uploads/?" in r and "mount=" in r]
    mounted = {d for d in layer_digests if any(f"mount={d.replace(':', '%3A')}" in r for r in mounts)}
    assert mounted == layer_digests, f"expected a mount of every layer; {shown}"
    uploads = [r for r in requests if r.split(" ", 1)[0] in {"PATCH", "PUT"} and f"/v2/{target}/blobs/" in r]
    uploaded = {d for d in layer_digests if any(d.replace(":", "%3A") in r for r in uploads)}
    assert uploaded == set(), f"layers were uploaded although their mount succeeded; {shown}"
    # containers/image does not try to reuse config blobs: it uploads them (seen with skopeo 1.9).
    blob_digests = layer_digests | {config.digest for config in oci_image.configs.values()}
    for digest in blob_digests:
        assert http_get(f"/v2/{target}/blobs/{digest}", method="HEAD").status_code == 200
        assert http_get(f"/v2/e2e/never-pushed/blobs/{digest}", method="HEAD").status_code == 404
    skopeo.copy("--all", "--preserve-digests", skopeo.docker(target, "v1"), f"oci:{tmp_path / 'back'}:v1")
    assert_same_image(oci_image.path, "v1", tmp_path / "back", "v1")


def test_delete_removes_the_image(registry: RegistryServer, pushed: str, oci_image: OciImage, skopeo: Skopeo,
                                  http_get: Callable[..., Any], tmp_path: Path) -> None:
    """``skopeo delete`` deletes the index by digest; the tag goes, other repositories keep theirs.

    Spec "Deleting manifests": ``DELETE /v2/<name>/manifests/<digest>`` answers 202 and the
    manifest (and tags pointing to it) is gone: GET then answers 404 ``MANIFEST_UNKNOWN``.
    """
    target = "e2e/delete-me"
    skopeo.copy("--all", "--preserve-digests", oci_image.reference, skopeo.docker(target, "v1"))
    result = skopeo.delete(skopeo.docker(target, "v1"))
    deletes = [r for r in requests_in(result.stderr) if r.startswith("DELETE ")]
    assert deletes and all(f"/v2/{target}/manifests/sha256" in r for r in deletes), requests_in(result.stderr)
    missing = skopeo.run("inspect", "--tls-verify=false", "--raw", skopeo.docker(target, "v1"), check=False)
    assert missing.returncode != 0
    response = http_get(f"/v2/{target}/manifests/{oci_image.index.digest}", headers={"Accept": OCI_INDEX})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert "v1" not in _tags_or_empty(http_get, target)
    # The same content in another repository is untouched.
    skopeo.copy("--all", "--preserve-digests", skopeo.docker(pushed, "v1"), f"oci:{tmp_path / 'still'}:v1")
    assert_same_image(oci_image.path, "v1", tmp_path / "still", "v1")


def _tags_or_empty(http_get: Callable[..., Any], repository: str) -> list[str]:
    """Tags of ``repository``, or ``[]`` when the registry answers 404 (no tags left, spec allows it)."""
    response = http_get(f"/v2/{repository}/tags/list")
    if response.status_code == 404:
        return []
    assert response.status_code == 200, response.text
    return list(response.json().get("tags") or [])


def test_copy_all_as_docker_schema2(pushed: str, oci_image: OciImage, skopeo: Skopeo,
                                    http_get: Callable[..., Any]) -> None:
    """``--format v2s2`` converts to a Docker manifest list + schema2 manifests; the registry serves them.

    Docker Image Manifest V2 Schema 2 (``docker-manifest-v2-schema2.md``): the manifest list and
    image manifests are stored and served with their own media types.
    """
    target = "e2e/docker-format"
    skopeo.copy("--all", "--format=v2s2", oci_image.reference, skopeo.docker(target, "v1"))
    raw = skopeo.inspect_raw(skopeo.docker(target, "v1"))
    document = json.loads(raw)
    assert document["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    response = http_get(f"/v2/{target}/manifests/v1", headers={
        "Accept": "application/vnd.docker.distribution.manifest.list.v2+json"})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == document["mediaType"]
    assert response.content == raw
    for child in document["manifests"]:
        assert child["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
        child_raw = skopeo.inspect_raw(skopeo.docker(target, child["digest"]))
        assert len(child_raw) == child["size"]
        assert json.loads(child_raw)["mediaType"] == child["mediaType"]


def test_push_compressing_on_the_fly(registry: RegistryServer, skopeo: Skopeo, tmp_path: Path) -> None:
    """Layers compressed while pushed arrive as PATCH bodies of unknown length, and survive intact.

    With ``--dest-compress`` skopeo gzips plain ``tar`` layers on the fly, so it does not know
    their size: it sends each ``PATCH`` with ``Transfer-Encoding: chunked`` and no
    ``Content-Length`` (seen with skopeo 1.9.3), then ``PUT ?digest=``. Spec "Pushing a blob in
    chunks" / streamed upload; the pushed index, with new digests, must then pull back intact and
    every layer must decompress to the tar whose digest is its config's ``diff_id``.
    """
    plain = build_multiplatform_image(tmp_path / "plain", "v1", seed=101, compress_layers=False)
    skopeo.copy("--all", "--dest-compress", plain.reference, skopeo.docker("e2e/compressed", "v1"))
    raw_index = skopeo.inspect_raw(skopeo.docker("e2e/compressed", "v1"))
    assert raw_index != plain.blob_bytes(plain.index.digest), "skopeo did not rewrite the index"
    skopeo.copy("--all", "--preserve-digests", skopeo.docker("e2e/compressed", "v1"), f"oci:{tmp_path / 'back'}:v1")
    back = tmp_path / "back"
    assert read_blob(back, resolve_tag(back, "v1")["digest"]) == raw_index
    for child in json.loads(raw_index)["manifests"]:
        manifest = json.loads(read_blob(back, child["digest"]))
        config = json.loads(read_blob(back, manifest["config"]["digest"]))
        platform = f"{config['os']}/{config['architecture']}"
        originals = [layer.digest for layer in plain.layers[platform]]
        assert config["rootfs"]["diff_ids"] == originals
        for layer, original in zip(manifest["layers"], originals):
            assert layer["mediaType"] == OCI_LAYER_GZIP
            assert sha256_digest(gzip.decompress(read_blob(back, layer["digest"]))) == original


def test_console_script_on_empty_folder_round_trips(oci_image: OciImage, tmp_path: Path) -> None:
    """``docker-registry-wsgi serve`` on an empty folder takes ``skopeo copy --all`` and gives it back.

    The issue's "done when": the console script with an empty folder accepts a multi-platform
    image and returns it byte for byte (spec "Push" then "Pull").
    """
    skopeo_path = require_tool("skopeo", "apt-get install -y skopeo")
    script = require_tool("docker-registry-wsgi", "pip install -e .[server]")
    root = tmp_path / "empty"
    root.mkdir()
    assert list(root.iterdir()) == []
    with RegistryServer(root, command=[script, "serve"], log_path=tmp_path / "console.log") as server:
        skopeo = Skopeo(skopeo_path, server.hostport)
        try:
            skopeo.copy("--all", "--preserve-digests", oci_image.reference, skopeo.docker("library/round-trip", "v1"))
            skopeo.copy("--all", "--preserve-digests", skopeo.docker("library/round-trip", "v1"),
                        f"oci:{tmp_path / 'back'}:v1")
        except ClientError as exc:
            raise ClientError(f"{exc}\n--- transcript ---\n" + "\n".join(skopeo.transcript)[-8000:]) from None
    assert_same_image(oci_image.path, "v1", tmp_path / "back", "v1")
    assert any(root.iterdir()), "the registry stored nothing under --root"
