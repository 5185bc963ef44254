"""oras-py (PyPI ``oras``) against the standalone registry: artifacts, subjects and referrers.

Spec references are to ``oci-distribution-spec.md`` (OCI Distribution Spec v1.1) and
``oci-image-spec-artifacts-guidance.md``. oras-py 0.2 has ``push`` (with ``subject``), ``pull``,
``get_tags``, ``get_manifest`` and ``delete_tag``, but no referrers call and no ``artifactType``
field: the referrers listing goes through its ``do_request`` (same session, same auth), and the
artifact type is carried by the config media type, which the referrers API reports as
``artifactType`` when the manifest has none (spec "Listing Referrers").
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.support.clients import OrasClient
from tests.support.oci_images import OCI_INDEX, OCI_MANIFEST, make_artifact_files

pytestmark = pytest.mark.e2e

SBOM_TYPE = "application/vnd.example.sbom.v1+json"
SIGNATURE_TYPE = "application/vnd.example.signature.v1+json"


def _push(oras: OrasClient, repository: str, tag: str, files: list[Path], **options: Any) -> Any:
    """``oras.provider.Registry.push`` of ``files``; returns the manifest PUT's response."""
    response = oras.client.push(
        target=oras.target(repository, tag),
        files=[str(path) for path in files],
        disable_path_validation=True,
        quiet=True,
        **options,
    )
    assert response.status_code == 201, (response.status_code, response.text)
    return response


def _manifest(oras: OrasClient, repository: str, reference: str) -> tuple[bytes, str]:
    """Raw bytes and ``Docker-Content-Digest`` of a manifest, fetched with oras-py's session."""
    url = f"http://{oras.hostport}/v2/{repository}/manifests/{reference}"
    response = oras.client.do_request(url, "GET", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 200, response.text
    return response.content, response.headers["Docker-Content-Digest"]


def _referrers(oras: OrasClient, repository: str, digest: str, artifact_type: str | None = None) -> Any:
    """``GET /v2/<name>/referrers/<digest>[?artifactType=]`` through oras-py's session."""
    url = f"http://{oras.hostport}/v2/{repository}/referrers/{digest}"
    if artifact_type:
        url += "?" + urlencode({"artifactType": artifact_type})
    return oras.client.do_request(url, "GET", headers={"Accept": OCI_INDEX})


def test_push_and_pull_artifact(oras_client: OrasClient, tmp_path: Path) -> None:
    """oras-py pushes files as an artifact and pulls the same bytes back.

    Spec "Push" (blobs: POST then monolithic PUT ``?digest=``; manifest PUT by tag) and "Pull";
    artifacts guidance: the files are layers titled by ``org.opencontainers.image.title``.
    """
    files = make_artifact_files(tmp_path / "in")
    response = _push(oras_client, "oras/artifact", "v1", files.paths)
    raw, digest = _manifest(oras_client, "oras/artifact", "v1")
    assert digest == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert response.headers["Docker-Content-Digest"] == digest
    manifest = json.loads(raw)
    assert {layer["annotations"]["org.opencontainers.image.title"]: layer["digest"]
            for layer in manifest["layers"]} == files.digests()
    pulled = oras_client.client.pull(target=oras_client.target("oras/artifact", "v1"), outdir=str(tmp_path / "out"))
    assert sorted(Path(p).name for p in pulled) == sorted(files.contents)
    for name, data in files.contents.items():
        assert (tmp_path / "out" / name).read_bytes() == data


def test_chunked_push_and_tags(oras_client: OrasClient, tmp_path: Path) -> None:
    """oras-py's chunked upload (POST, PATCH with ``Content-Range``, PUT ``?digest=``) and ``get_tags``.

    Spec "Pushing a blob in chunks" (chunks of 64 KiB here, so the 200 KiB file takes four) and
    "Listing Tags".
    """
    files = make_artifact_files(tmp_path / "in", seed=7)
    for tag in ("b", "a", "c"):
        _push(oras_client, "oras/chunked", tag, files.paths, do_chunked=True, chunk_size=64 * 1024)
    assert oras_client.client.get_tags(oras_client.target("oras/chunked", "a")) == ["a", "b", "c"]
    pulled = oras_client.client.pull(target=oras_client.target("oras/chunked", "c"), outdir=str(tmp_path / "out"))
    assert {Path(p).name: Path(p).read_bytes() for p in pulled} == dict(files.contents)


def test_subject_and_referrers(oras_client: OrasClient, tmp_path: Path) -> None:
    """A manifest pushed with ``subject`` is listed by the referrers API, with filtering.

    Spec "Pushing Manifests with Subject" (the PUT answers with ``OCI-Subject``) and "Listing
    Referrers" (an image index of descriptors whose ``artifactType`` is the manifest's
    ``artifactType`` or, absent that, its config ``mediaType``, with the manifest's annotations;
    ``?artifactType=`` filters and the response then has ``OCI-Filters-Applied: artifactType``;
    a digest with no referrers gets 200 and an empty list).
    """
    import oras.oci

    repository = "oras/with-referrers"
    subject_files = make_artifact_files(tmp_path / "subject", seed=1)
    _push(oras_client, repository, "v1", subject_files.paths)
    subject_raw, subject_digest = _manifest(oras_client, repository, "v1")
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_raw))

    pushed: dict[str, tuple[str, dict[str, str]]] = {}
    for tag, artifact_type in (("sbom", SBOM_TYPE), ("sig", SIGNATURE_TYPE)):
        config = tmp_path / f"{tag}-config.json"
        config.write_bytes(json.dumps({"kind": tag}).encode())
        files = make_artifact_files(tmp_path / tag, {f"{tag}.json": json.dumps({"for": subject_digest}).encode()})
        annotations = {"org.example.kind": tag}
        response = _push(oras_client, repository, tag, files.paths, subject=subject,
                         manifest_config=f"{config}:{artifact_type}", manifest_annotations=annotations)
        assert response.headers.get("OCI-Subject") == subject_digest, dict(response.headers)
        pushed[response.headers["Docker-Content-Digest"]] = (artifact_type, annotations)

    response = _referrers(oras_client, repository, subject_digest)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].split(";")[0] == OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    listed = {d["digest"]: d for d in index["manifests"]}
    assert set(listed) == set(pushed)
    for digest, (artifact_type, annotations) in pushed.items():
        raw, _ = _manifest(oras_client, repository, digest)
        assert listed[digest]["mediaType"] == OCI_MANIFEST
        assert listed[digest]["size"] == len(raw)
        assert listed[digest]["artifactType"] == artifact_type
        assert listed[digest]["annotations"] == annotations

    filtered = _referrers(oras_client, repository, subject_digest, SBOM_TYPE)
    assert filtered.status_code == 200, filtered.text
    assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
    assert [d["artifactType"] for d in filtered.json()["manifests"]] == [SBOM_TYPE]

    none = _referrers(oras_client, repository, "sha256:" + hashlib.sha256(b"no such manifest").hexdigest())
    assert none.status_code == 200, none.text
    assert none.json()["manifests"] == []


def test_delete_tag(oras_client: OrasClient, tmp_path: Path) -> None:
    """oras-py ``delete_tag``: HEAD the tag for its digest, then DELETE the manifest by digest.

    Spec "Deleting Manifests": 202, after which the tag answers 404 ``MANIFEST_UNKNOWN``.
    """
    files = make_artifact_files(tmp_path / "in", seed=3)
    _push(oras_client, "oras/delete", "v1", files.paths)
    _push(oras_client, "oras/delete", "keep", make_artifact_files(tmp_path / "keep", seed=4).paths)
    assert oras_client.client.delete_tag(oras_client.target("oras/delete", "v1"), "v1") is True
    url = f"http://{oras_client.hostport}/v2/oras/delete/manifests/v1"
    response = oras_client.client.do_request(url, "GET", headers={"Accept": OCI_MANIFEST})
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert oras_client.client.get_tags(oras_client.target("oras/delete", "keep")) == ["keep"]


def test_referrer_pushed_before_its_subject_and_deleted(oras_client: OrasClient, tmp_path: Path) -> None:
    """A referrer may come before its subject, and leaves the referrers list when deleted.

    Spec "Pushing Manifests" (a registry MUST accept a manifest whose ``subject`` does not exist
    yet, "allowing clients to push a manifest and referrers to that manifest in either order")
    and "Listing Referrers" (descriptors of the manifests in ``<name>`` with that subject: a
    deleted manifest is no longer one).
    """
    import oras.oci

    repository = "oras/referrer-first"
    subject_files = make_artifact_files(tmp_path / "subject", seed=21)
    # Predict the subject manifest's digest: push it to another repository first (same bytes).
    _push(oras_client, "oras/referrer-first-twin", "v1", subject_files.paths)
    subject_raw, subject_digest = _manifest(oras_client, "oras/referrer-first-twin", "v1")
    subject = oras.oci.Subject(mediaType=OCI_MANIFEST, digest=subject_digest, size=len(subject_raw))

    config = tmp_path / "config.json"
    config.write_bytes(b'{"kind":"early"}')
    early = _push(oras_client, repository, "early", make_artifact_files(tmp_path / "early", seed=22).paths,
                  subject=subject, manifest_config=f"{config}:{SBOM_TYPE}")
    assert early.headers.get("OCI-Subject") == subject_digest
    early_digest = early.headers["Docker-Content-Digest"]
    listed = _referrers(oras_client, repository, subject_digest)
    assert listed.status_code == 200, listed.text
    assert [d["digest"] for d in listed.json()["manifests"]] == [early_digest]

    _push(oras_client, repository, "v1", subject_files.paths)
    assert _manifest(oras_client, repository, "v1") == (subject_raw, subject_digest)
    assert [d["digest"] for d in _referrers(oras_client, repository, subject_digest).json()["manifests"]] == [early_digest]

    assert oras_client.client.delete_tag(oras_client.target(repository, "early"), "early") is True
    after = _referrers(oras_client, repository, subject_digest)
    assert after.status_code == 200, after.text
    assert after.json()["manifests"] == []
