"""``/v2/<name>/referrers/<digest>``: oci-distribution-spec.md "Listing Referrers" (end-12a, end-12b)
and "Pushing Manifests with Subject"."""

from __future__ import annotations

import json

import pytest
import webtest

from . import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, Image, RegistryClient, assert_api_version, assert_error, descriptor, sha256

SBOM = "application/vnd.example.sbom.v1"
SIGNATURE = "application/vnd.example.signature.v1"
EMPTY_CONFIG_TYPE = "application/vnd.example.config.v1+json"


@pytest.fixture
def subject(client: RegistryClient) -> Image:
    return client.push_image("lib/app", "v1")


def _index(response: webtest.TestResponse) -> dict:
    assert response.status_int == 200
    assert response.headers["Content-Type"] == OCI_INDEX
    document = json.loads(response.body)
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == OCI_INDEX
    return document


def test_end_12a_unknown_digest_is_empty_index_never_404(app: webtest.TestApp, subject: Image) -> None:
    """oci-distribution-spec.md: Listing Referrers: MUST NOT 404; no referrers -> empty index."""
    for path in (f"/v2/lib/app/referrers/{sha256(b'nothing refers to me')}",
                 f"/v2/lib/app/referrers/{subject.digest}",
                 f"/v2/no/such/repo/referrers/{subject.digest}"):
        response = app.get(path, status=200)
        assert _index(response)["manifests"] == []
        assert "OCI-Filters-Applied" not in response.headers
        assert_api_version(response.headers)


def test_end_12a_lists_manifests_with_that_subject(app: webtest.TestApp, client: RegistryClient,
                                                    subject: Image) -> None:
    """Descriptors carry ``artifactType`` (else the config's ``mediaType`` for an image manifest;
    omitted for an index without one) and the manifest's annotations."""
    subject_descriptor = descriptor(OCI_MANIFEST, subject.body)
    sbom = client.push_image("lib/app", None, layers=[b"sbom"], subject=subject_descriptor,
                             artifact_type=SBOM, annotations={"org.example.format": "json"})
    signature = client.push_image("lib/app", None, layers=[b"sig"], subject=subject_descriptor,
                                  config_type=EMPTY_CONFIG_TYPE)
    index = client.push_index("lib/app", None, [sbom], subject=subject_descriptor,
                              annotations={"kind": "bundle"})
    client.push_image("lib/app", "unrelated", layers=[b"unrelated"])
    for referrer in (sbom, signature):
        assert referrer.response.headers["OCI-Subject"] == subject.digest
    assert index.response.headers["OCI-Subject"] == subject.digest

    manifests = _index(app.get(f"/v2/lib/app/referrers/{subject.digest}"))["manifests"]
    by_digest = {m["digest"]: m for m in manifests}
    assert set(by_digest) == {sbom.digest, signature.digest, index.digest}
    assert by_digest[sbom.digest] == {
        "mediaType": OCI_MANIFEST, "digest": sbom.digest, "size": len(sbom.body),
        "artifactType": SBOM, "annotations": {"org.example.format": "json"},
    }
    assert by_digest[signature.digest]["artifactType"] == EMPTY_CONFIG_TYPE
    assert by_digest[signature.digest]["size"] == len(signature.body)
    assert "artifactType" not in by_digest[index.digest]
    assert by_digest[index.digest]["mediaType"] == OCI_INDEX
    assert by_digest[index.digest]["annotations"] == {"kind": "bundle"}


def test_end_12b_artifact_type_filter(app: webtest.TestApp, client: RegistryClient, subject: Image) -> None:
    """oci-distribution-spec.md: Listing Referrers: ``?artifactType=`` filters and the answer says
    ``OCI-Filters-Applied: artifactType``."""
    subject_descriptor = descriptor(OCI_MANIFEST, subject.body)
    sbom = client.push_image("lib/app", None, layers=[b"sbom"], subject=subject_descriptor, artifact_type=SBOM)
    client.push_image("lib/app", None, layers=[b"sig"], subject=subject_descriptor, artifact_type=SIGNATURE)
    response = app.get(f"/v2/lib/app/referrers/{subject.digest}?artifactType={SBOM}")
    assert [m["digest"] for m in _index(response)["manifests"]] == [sbom.digest]
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    response = app.get(f"/v2/lib/app/referrers/{subject.digest}?artifactType=application/none")
    assert _index(response)["manifests"] == []
    assert response.headers["OCI-Filters-Applied"] == "artifactType"
    unfiltered = app.get(f"/v2/lib/app/referrers/{subject.digest}")
    assert len(_index(unfiltered)["manifests"]) == 2
    assert "OCI-Filters-Applied" not in unfiltered.headers


def test_end_12a_referrer_pushed_before_its_subject(app: webtest.TestApp, client: RegistryClient) -> None:
    """oci-distribution-spec.md: Push: a subject that does not exist yet MUST be accepted."""
    future = descriptor(OCI_MANIFEST, b'{"future":"manifest"}')
    referrer = client.push_image("lib/app", None, layers=[b"early"], subject=future, artifact_type=SBOM)
    manifests = _index(app.get(f"/v2/lib/app/referrers/{future['digest']}"))["manifests"]
    assert [m["digest"] for m in manifests] == [referrer.digest]


def test_end_12a_referrers_are_per_repository(app: webtest.TestApp, client: RegistryClient,
                                              subject: Image) -> None:
    subject_descriptor = descriptor(OCI_MANIFEST, subject.body)
    client.push_image("lib/other", None, subject=subject_descriptor, artifact_type=SBOM)
    assert _index(app.get(f"/v2/lib/app/referrers/{subject.digest}"))["manifests"] == []
    assert len(_index(app.get(f"/v2/lib/other/referrers/{subject.digest}"))["manifests"]) == 1


def test_end_12a_deleted_referrer_disappears(app: webtest.TestApp, client: RegistryClient,
                                             subject: Image) -> None:
    """oci-distribution-spec.md: Deleting Manifests: a deleted referrer is no longer listed."""
    subject_descriptor = descriptor(OCI_MANIFEST, subject.body)
    referrer = client.push_image("lib/app", None, layers=[b"r"], subject=subject_descriptor, artifact_type=SBOM)
    app.delete(f"/v2/lib/app/manifests/{referrer.digest}", status=202)
    assert _index(app.get(f"/v2/lib/app/referrers/{subject.digest}"))["manifests"] == []


def test_end_12a_head_has_length(app: webtest.TestApp, subject: Image) -> None:
    response = app.head(f"/v2/lib/app/referrers/{subject.digest}", status=200)
    assert response.body == b""
    assert int(response.headers["Content-Length"]) > 0


@pytest.mark.parametrize("digest", ["sha256:nothex", "latest", "md5:" + "a" * 32, "sha256:" + "a" * 65])
def test_end_12a_invalid_digest_400(app: webtest.TestApp, digest: str) -> None:
    """oci-distribution-spec.md: Listing Referrers: an invalid ``<digest>`` MUST be a 400."""
    assert_error(app.get(f"/v2/lib/app/referrers/{digest}", status=400), 400, "DIGEST_INVALID")


def test_end_12a_config_media_type_when_no_artifact_type(client: RegistryClient, app: webtest.TestApp,
                                                         subject: Image) -> None:
    referrer = client.push_image("lib/app", None, layers=[], subject=descriptor(OCI_MANIFEST, subject.body))
    manifests = _index(app.get(f"/v2/lib/app/referrers/{subject.digest}"))["manifests"]
    assert [(m["digest"], m["artifactType"]) for m in manifests] == [(referrer.digest, OCI_CONFIG)]
