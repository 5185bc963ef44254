"""``/v2/<name>/manifests/<reference>``: oci-distribution-spec.md "Pulling manifests" (end-3),
"Checking if content exists in the registry", "Pushing Manifests" (end-7a, end-7b), "Pushing
Manifests with Subject", "Deleting tags" and "Deleting Manifests" (end-9)."""

from __future__ import annotations

import json

import pytest
import webtest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import MemoryStorage, Storage

from . import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_MANIFEST,
    Image,
    RegistryClient,
    assert_api_version,
    assert_error,
    canonical,
    descriptor,
    raw_call,
    sha256,
)

CONFIG = b'{"architecture":"amd64","os":"linux"}'
LAYER = b"layer bytes"


def _manifest(**extra: object) -> bytes:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, CONFIG),
        "layers": [descriptor(OCI_LAYER, LAYER)],
        **extra,
    }
    return canonical({k: v for k, v in document.items() if v is not None})


@pytest.fixture
def blobs(client: RegistryClient) -> None:
    client.push_blob("lib/app", CONFIG)
    client.push_blob("lib/app", LAYER)


# -- push and pull -----------------------------------------------------------------------------


def test_end_7a_put_by_tag_201_and_pull_by_tag_and_digest(app: webtest.TestApp, client: RegistryClient,
                                                          blobs: None) -> None:
    """oci-distribution-spec.md: Pushing Manifests: 201, ``Location``, ``Docker-Content-Digest``;
    Pulling manifests: exact bytes, ``Content-Type`` = the manifest's ``mediaType``."""
    body = b'{ "schemaVersion": 2,\n  "mediaType": "%s", "config": %s, "layers": [] }' % (
        OCI_MANIFEST.encode(), canonical(descriptor(OCI_CONFIG, CONFIG)))
    digest = sha256(body)
    response = client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    assert response.headers["Location"] == f"http://localhost/v2/lib/app/manifests/{digest}"
    assert response.headers["Docker-Content-Digest"] == digest
    assert_api_version(response.headers)
    for reference in ("v1", digest):
        pulled = app.get(f"/v2/lib/app/manifests/{reference}", headers={"Accept": OCI_MANIFEST})
        assert pulled.status_int == 200
        assert pulled.body == body  # stored in the exact byte representation
        assert pulled.headers["Content-Type"] == OCI_MANIFEST
        assert pulled.headers["Docker-Content-Digest"] == digest
        assert pulled.headers["Content-Length"] == str(len(body))
        assert pulled.headers["ETag"] == f'"{digest}"'


def test_end_3_head_manifest_length_and_digest(app: webtest.TestApp, client: RegistryClient,
                                               blobs: None) -> None:
    """oci-distribution-spec.md: Checking if content exists: HEAD has digest and Content-Length."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    for reference in ("v1", sha256(body)):
        head = app.head(f"/v2/lib/app/manifests/{reference}", status=200)
        assert head.body == b""
        assert head.headers["Content-Length"] == str(len(body))
        assert head.headers["Docker-Content-Digest"] == sha256(body)
        assert head.headers["Content-Type"] == OCI_MANIFEST


def test_end_3_unknown_manifest_404(app: webtest.TestApp, client: RegistryClient, blobs: None) -> None:
    """oci-distribution-spec.md: Pulling manifests: not found -> 404 MANIFEST_UNKNOWN (code-7)."""
    client.put_manifest("lib/app", "v1", _manifest(), OCI_MANIFEST)
    for path in ("/v2/lib/app/manifests/v2", f"/v2/lib/app/manifests/{sha256(b'x')}",
                 "/v2/no/such/repo/manifests/latest"):
        assert_error(app.get(path, status=404), 404, "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
        assert_error(app.head(path, status=404), 404)


def test_end_3_manifest_is_not_served_from_another_repository(app: webtest.TestApp,
                                                              client: RegistryClient, blobs: None) -> None:
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    assert_error(app.get(f"/v2/lib/other/manifests/{sha256(body)}", status=404), 404, "MANIFEST_UNKNOWN")
    assert_error(app.get("/v2/lib/other/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("reference", ["-bad", "a" * 129, ".dot", "sha256:nothex", "md5:abc"])
def test_end_3_invalid_reference_400(app: webtest.TestApp, reference: str) -> None:
    """oci-distribution-spec.md: Pulling manifests: a tag MUST match ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    response = app.get(f"/v2/lib/app/manifests/{reference}", status=400)
    assert_error(response, 400, "MANIFEST_INVALID", "DIGEST_INVALID", "TAG_INVALID")


def test_end_7a_longest_tag_accepted(client: RegistryClient, app: webtest.TestApp, blobs: None) -> None:
    tag = "T" + "a" * 127
    client.put_manifest("lib/app", tag, _manifest(), OCI_MANIFEST)
    assert app.get(f"/v2/lib/app/manifests/{tag}").status_int == 200
    response = client.put_manifest("lib/app", tag + "a", _manifest(), OCI_MANIFEST, status=400)
    assert_error(response, 400, "MANIFEST_INVALID", "TAG_INVALID")


def test_end_7a_docker_schema2_round_trip(app: webtest.TestApp, client: RegistryClient) -> None:
    image = client.push_image("lib/app", "v2s2", media_type=DOCKER_MANIFEST)
    pulled = app.get("/v2/lib/app/manifests/v2s2", headers={"Accept": DOCKER_MANIFEST})
    assert pulled.headers["Content-Type"] == DOCKER_MANIFEST
    assert pulled.body == image.body


def test_end_7a_helm_manifest_without_media_type_uses_content_type(app: webtest.TestApp,
                                                                    client: RegistryClient) -> None:
    """Helm omits ``mediaType``: the request's ``Content-Type`` is the type served back."""
    image = client.push_image("charts/app", "0.1.0", include_media_type=False,
                              config_type="application/vnd.cncf.helm.config.v1+json")
    assert "mediaType" not in image.document
    pulled = app.get("/v2/charts/app/manifests/0.1.0")
    assert pulled.headers["Content-Type"] == OCI_MANIFEST
    assert pulled.body == image.body


def test_end_7a_content_type_parameters_ignored(app: webtest.TestApp, client: RegistryClient,
                                                blobs: None) -> None:
    """oci-distribution-spec.md: Pushing Manifests: the registry SHOULD ignore Content-Type parameters;
    Pulling manifests: it SHOULD NOT send parameters back."""
    client.put_manifest("lib/app", "v1", _manifest(), OCI_MANIFEST + "; charset=utf-8")
    assert app.get("/v2/lib/app/manifests/v1").headers["Content-Type"] == OCI_MANIFEST


def test_end_7a_media_type_disagreeing_with_content_type_400(client: RegistryClient, blobs: None) -> None:
    response = client.put_manifest("lib/app", "v1", _manifest(), DOCKER_MANIFEST, status=400)
    assert_error(response, 400, "MANIFEST_INVALID")


def test_end_7a_retag_points_tag_at_new_manifest(app: webtest.TestApp, client: RegistryClient,
                                                 blobs: None) -> None:
    first, second = _manifest(), _manifest(annotations={"v": "2"})
    client.put_manifest("lib/app", "latest", first, OCI_MANIFEST)
    client.put_manifest("lib/app", "latest", second, OCI_MANIFEST)
    assert app.get("/v2/lib/app/manifests/latest").body == second
    assert app.get(f"/v2/lib/app/manifests/{sha256(first)}").body == first


# -- Accept negotiation ------------------------------------------------------------------------


@pytest.mark.parametrize("accept", [
    None,
    "*/*",
    OCI_MANIFEST,
    f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}, {OCI_INDEX}, {OCI_MANIFEST}",  # several headers, joined
    f"{DOCKER_MANIFEST};q=0.9, {OCI_MANIFEST};q=0.5",
    f"{DOCKER_MANIFEST}, application/*",
])
def test_end_3_accept_admitting_the_type_200(app: webtest.TestApp, client: RegistryClient,
                                             blobs: None, accept: str | None) -> None:
    """oci-distribution-spec.md: Pulling manifests: clients send one or several ``Accept`` headers
    (a server joins them with commas); any that admits the stored type gets it."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    headers = {"Accept": accept} if accept is not None else {}
    response = app.get("/v2/lib/app/manifests/v1", headers=headers, status=200)
    assert response.body == body
    assert response.headers["Content-Type"] == OCI_MANIFEST


def test_end_3_accept_from_several_header_lines(registry: Registry) -> None:
    """Several ``Accept`` lines reach WSGI as one comma-joined ``HTTP_ACCEPT``; the last may match."""
    app = webtest.TestApp(registry)
    image = RegistryClient(app).push_image("lib/app", "v1")
    accept = ",".join([DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST])
    response = raw_call(registry, "GET", "/v2/lib/app/manifests/v1", headers={"Accept": accept})
    assert response.status == 200 and response.body == image.body


@pytest.mark.parametrize("accept", [DOCKER_MANIFEST, f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}",
                                    f"{OCI_INDEX}"])
def test_end_3_accept_only_other_manifest_types_404(app: webtest.TestApp, client: RegistryClient,
                                                    blobs: None, accept: str) -> None:
    """A client that accepts only other manifest types gets 404 MANIFEST_UNKNOWN (as distribution)."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    for reference in ("v1", sha256(body)):
        response = app.get(f"/v2/lib/app/manifests/{reference}", headers={"Accept": accept}, status=404)
        assert_error(response, 404, "MANIFEST_UNKNOWN")
        assert_error(app.head(f"/v2/lib/app/manifests/{reference}", headers={"Accept": accept},
                              status=404), 404)


#: ``Accept`` as real clients send it on a manifest GET or HEAD, captured from a loopback server
#: (several header lines joined by ", ", as WSGI servers join them): dockerd 28.2.2 (six lines),
#: containerd 1.6.20's ``ctr images pull`` (one line, with ``*/*``), skopeo 1.9.3 (six lines).
#: None of them sends q values.
REAL_CLIENT_ACCEPT = {
    "docker": ", ".join([OCI_INDEX, "application/vnd.docker.distribution.manifest.v1+prettyjws",
                         "application/json", OCI_MANIFEST, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]),
    "containerd": f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}, {OCI_MANIFEST}, {OCI_INDEX}, */*",
    "skopeo": ", ".join([OCI_MANIFEST, DOCKER_MANIFEST,
                         "application/vnd.docker.distribution.manifest.v1+prettyjws",
                         "application/vnd.docker.distribution.manifest.v1+json",
                         DOCKER_MANIFEST_LIST, OCI_INDEX]),
}
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)


@pytest.fixture
def every_type(client: RegistryClient) -> dict[str, Image]:
    """One manifest of each stored type in ``lib/app``, tagged by a name of its own."""
    oci = client.push_image("lib/app", "oci")
    docker = client.push_image("lib/app", "docker", media_type=DOCKER_MANIFEST, layers=[b"docker layer"])
    return {
        OCI_MANIFEST: oci,
        DOCKER_MANIFEST: docker,
        OCI_INDEX: client.push_index("lib/app", "oci-index", [oci]),
        DOCKER_MANIFEST_LIST: client.push_index("lib/app", "docker-list", [docker],
                                                media_type=DOCKER_MANIFEST_LIST),
    }


def _tag(media_type: str) -> str:
    return {OCI_MANIFEST: "oci", DOCKER_MANIFEST: "docker", OCI_INDEX: "oci-index",
            DOCKER_MANIFEST_LIST: "docker-list"}[media_type]


@pytest.mark.parametrize("client_name", sorted(REAL_CLIENT_ACCEPT))
def test_end_3_real_clients_get_every_manifest_type(app: webtest.TestApp, every_type: dict[str, Image],
                                                    client_name: str) -> None:
    """oci-distribution-spec.md "Pulling manifests": docker, containerd and skopeo get each of the
    four stored types, by tag and by digest, GET and HEAD, typed as pushed."""
    accept = {"Accept": REAL_CLIENT_ACCEPT[client_name]}
    for media_type, image in every_type.items():
        for reference in (_tag(media_type), image.digest):
            response = app.get(f"/v2/lib/app/manifests/{reference}", headers=accept, status=200)
            assert response.body == image.body
            assert response.headers["Content-Type"] == media_type
            head = app.head(f"/v2/lib/app/manifests/{reference}", headers=accept, status=200)
            assert head.headers["Content-Type"] == media_type
            assert head.headers["Docker-Content-Digest"] == image.digest


@pytest.mark.parametrize("accept", [
    f"{OCI_MANIFEST};q=0",
    f"{OCI_MANIFEST};q=0.000",
    f"{OCI_MANIFEST}; Q=0",
    f"*/*, {OCI_MANIFEST};q=0",  # the most specific range decides (RFC 9110 12.5.1)
    f"{OCI_MANIFEST};q=0, application/*",
    f"{DOCKER_MANIFEST}, {OCI_MANIFEST};q=0",
    "*/*;q=0",
    "application/*;q=0",
])
def test_end_3_accept_q0_is_not_acceptable(app: webtest.TestApp, client: RegistryClient, blobs: None,
                                          accept: str) -> None:
    """RFC 9110 12.4.2: "a value of 0 means not acceptable": 404 MANIFEST_UNKNOWN as for a type the
    client does not list (distribution's answer), by tag and by digest, GET and HEAD."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    for reference in ("v1", sha256(body)):
        response = app.get(f"/v2/lib/app/manifests/{reference}", headers={"Accept": accept}, status=404)
        assert_error(response, 404, "MANIFEST_UNKNOWN")
        assert_error(app.head(f"/v2/lib/app/manifests/{reference}", headers={"Accept": accept},
                              status=404), 404)


@pytest.mark.parametrize("accept", [
    f"application/*;q=0, {OCI_MANIFEST}",  # the exact type is more specific than the range
    f"{OCI_MANIFEST};q=0.001",
    OCI_MANIFEST.upper(),  # media types are case-insensitive (RFC 9110 8.3.1)
    f"{DOCKER_MANIFEST};q=0",  # refuses another type only: nothing said about this one
    "application/json",  # names no manifest type: served as stored
    f"{OCI_MANIFEST};q=abc",  # unreadable: as if absent, never a 500
    "",
])
def test_end_3_accept_admits_with_q_above_0(app: webtest.TestApp, client: RegistryClient, blobs: None,
                                           accept: str) -> None:
    """RFC 9110 12.5.1: the most specific matching range gives the quality; any q above 0 admits."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    response = app.get("/v2/lib/app/manifests/v1", headers={"Accept": accept}, status=200)
    assert response.body == body and response.headers["Content-Type"] == OCI_MANIFEST


_ranges = st.sampled_from([*MANIFEST_TYPES, "*/*", "application/*", "application/json", "text/plain"])
_qualities = st.sampled_from([None, "0", "0.0", "0.5", "1", "1.000"])


def _specificity(media_range: str, media_type: str) -> int | None:
    """How specifically ``media_range`` names ``media_type``: 2 exactly, 1 by subtype, 0 by
    ``*/*``; None if it does not."""
    if media_range == media_type:
        return 2
    if media_range == media_type.split("/")[0] + "/*":
        return 1
    return 0 if media_range == "*/*" else None


def _model_acceptable(items: list[tuple[str, str | None]], stored: str) -> bool:
    """RFC 9110 12.5.1 over parsed items, plus the registry's rule for types not named at all."""
    scored = [(spec, 1.0 if q is None else float(q)) for media_range, q in items
              if (spec := _specificity(media_range, stored)) is not None]
    if not items:
        return True
    if scored:
        best = max(spec for spec, _ in scored)
        return max(q for spec, q in scored if spec == best) > 0
    return not any((1.0 if q is None else float(q)) > 0 and r in MANIFEST_TYPES for r, q in items)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(st.tuples(_ranges, _qualities), max_size=5), stored=st.sampled_from(MANIFEST_TYPES))
@example(items=[("*/*", None), (OCI_MANIFEST, "0")], stored=OCI_MANIFEST)
@example(items=[(DOCKER_MANIFEST, None)], stored=OCI_MANIFEST)
@example(items=[("application/json", None)], stored=OCI_INDEX)
def test_end_3_accept_against_a_model(app: webtest.TestApp, every_type: dict[str, Image],
                                      items: list[tuple[str, str | None]], stored: str) -> None:
    """RFC 9110 12.4.2 and 12.5.1 (q values, most specific range first) against a model, through
    the app: 200 with the manifest, or 404 MANIFEST_UNKNOWN."""
    accept = ", ".join(r if q is None else f"{r};q={q}" for r, q in items)
    headers = {"Accept": accept} if items else {}
    response = app.get(f"/v2/lib/app/manifests/{_tag(stored)}", headers=headers, expect_errors=True)
    if _model_acceptable(items, stored):
        assert response.status_int == 200 and response.body == every_type[stored].body
    else:
        assert_error(response, 404, "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("headers", [
    {},
    {"Accept": REAL_CLIENT_ACCEPT["docker"]},
    {"Accept": f"{OCI_MANIFEST};q=0"},
    {"If-None-Match": "*"},
    {"If-None-Match": '"sha256:' + "0" * 64 + '"'},
])
def test_end_3_head_answers_the_headers_of_get(app: webtest.TestApp, client: RegistryClient, blobs: None,
                                               headers: dict[str, str]) -> None:
    """RFC 9110 9.3.2: HEAD sends the status and header fields GET would send, without the body."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)

    def fields(response: webtest.TestResponse) -> list[tuple[str, str]]:
        return sorted((k, v) for k, v in response.headerlist if k != "X-Request-ID")  # one per request

    for reference in ("v1", sha256(body)):
        get = app.get(f"/v2/lib/app/manifests/{reference}", headers=headers, expect_errors=True)
        head = app.head(f"/v2/lib/app/manifests/{reference}", headers=headers, expect_errors=True)
        assert (head.status_int, fields(head), head.body) == (get.status_int, fields(get), b"")


# -- conditional requests (RFC 9110 section 13) ------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("by", ["digest", "tag"])
@pytest.mark.parametrize("if_none_match", [
    '"{digest}"',
    'W/"{digest}"',  # If-None-Match compares weakly (RFC 9110 13.1.2)
    '"sha256:{other}", "{digest}"',
    "*",
    "{digest}",  # unquoted, as distribution also accepts
])
def test_end_3_if_none_match_304(app: webtest.TestApp, client: RegistryClient, blobs: None,
                                 method: str, by: str, if_none_match: str) -> None:
    """RFC 9110 13.1.2, 15.4.5: a manifest the client holds (by digest or by tag) is 304 with its
    ``ETag`` and ``Docker-Content-Digest`` and no body, as distribution answers."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    digest = sha256(body)
    reference = digest if by == "digest" else "v1"
    header = if_none_match.format(digest=digest, other="0" * 64)
    response = app.request(f"/v2/lib/app/manifests/{reference}", method=method,
                           headers={"If-None-Match": header}, status=304)
    assert response.body == b""
    assert response.headers["ETag"] == f'"{digest}"'
    assert response.headers["Docker-Content-Digest"] == digest
    assert "Content-Length" not in response.headers and "Content-Type" not in response.headers
    assert_api_version(response.headers)


@pytest.mark.parametrize("if_none_match", ['"sha256:{other}"', '"{digest}x"', ""])
def test_end_3_if_none_match_other_tag_200(app: webtest.TestApp, client: RegistryClient, blobs: None,
                                          if_none_match: str) -> None:
    """RFC 9110 13.1.2: another entity tag is a condition that holds: the full 200."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    header = if_none_match.format(digest=sha256(body), other="0" * 64)
    response = app.get("/v2/lib/app/manifests/v1", headers={"If-None-Match": header}, status=200)
    assert response.body == body and response.headers["ETag"] == f'"{sha256(body)}"'


def test_end_3_if_none_match_follows_the_tag(app: webtest.TestApp, client: RegistryClient,
                                             blobs: None) -> None:
    """A tag moved to another manifest no longer matches the old ETag: 200 with the new one."""
    first, second = _manifest(), _manifest(annotations={"v": "2"})
    client.put_manifest("lib/app", "v1", first, OCI_MANIFEST)
    old = {"If-None-Match": f'"{sha256(first)}"'}
    app.get("/v2/lib/app/manifests/v1", headers=old, status=304)
    client.put_manifest("lib/app", "v1", second, OCI_MANIFEST)
    response = app.get("/v2/lib/app/manifests/v1", headers=old, status=200)
    assert response.body == second and response.headers["ETag"] == f'"{sha256(second)}"'


def test_end_3_if_none_match_is_ignored_when_not_acceptable(app: webtest.TestApp, client: RegistryClient,
                                                           blobs: None) -> None:
    """RFC 9110 13.2.1: preconditions are ignored when the answer would not be 2xx: the 404 of an
    unacceptable type stays a 404."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    response = app.get("/v2/lib/app/manifests/v1", status=404,
                       headers={"If-None-Match": f'"{sha256(body)}"', "Accept": DOCKER_MANIFEST})
    assert_error(response, 404, "MANIFEST_UNKNOWN")
    missing = app.get(f"/v2/lib/app/manifests/{sha256(b'none')}", status=404,
                      headers={"If-None-Match": "*"})
    assert_error(missing, 404, "MANIFEST_UNKNOWN")


# -- validation --------------------------------------------------------------------------------


def test_end_7a_put_by_digest_201(app: webtest.TestApp, client: RegistryClient, blobs: None) -> None:
    body = _manifest()
    response = client.put_manifest("lib/app", sha256(body), body, OCI_MANIFEST)
    assert response.headers["Docker-Content-Digest"] == sha256(body)
    assert app.get(f"/v2/lib/app/manifests/{sha256(body)}").body == body
    # Pushed by digest only: no tag.
    assert json.loads(app.get("/v2/lib/app/tags/list").body)["tags"] == []


def test_end_7a_put_by_digest_mismatch_digest_invalid(app: webtest.TestApp, client: RegistryClient,
                                                      blobs: None) -> None:
    """Code-4 DIGEST_INVALID when the body's digest is not the reference; nothing stored."""
    body = _manifest()
    wrong = sha256(body + b" ")
    assert_error(client.put_manifest("lib/app", wrong, body, OCI_MANIFEST, status=400), 400,
                 "DIGEST_INVALID")
    assert_error(app.get(f"/v2/lib/app/manifests/{wrong}", status=404), 404)
    assert_error(app.get(f"/v2/lib/app/manifests/{sha256(body)}", status=404), 404)


def test_end_7a_missing_layer_manifest_blob_unknown(app: webtest.TestApp, client: RegistryClient) -> None:
    """oci-distribution-spec.md: Push: a manifest referencing a missing blob -> MANIFEST_BLOB_UNKNOWN (code-5)."""
    client.push_blob("lib/app", CONFIG)
    response = client.put_manifest("lib/app", "v1", _manifest(), OCI_MANIFEST, status=400)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(LAYER) in json.dumps(error.get("detail"))
    assert_error(app.get("/v2/lib/app/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")


def test_end_7a_missing_config_manifest_blob_unknown(client: RegistryClient) -> None:
    client.push_blob("lib/app", LAYER)
    assert_error(client.put_manifest("lib/app", "v1", _manifest(), OCI_MANIFEST, status=400), 400,
                 "MANIFEST_BLOB_UNKNOWN")


def test_end_7a_blob_of_another_repository_does_not_count(client: RegistryClient) -> None:
    client.push_blob("other", CONFIG)
    client.push_blob("other", LAYER)
    assert_error(client.put_manifest("lib/app", "v1", _manifest(), OCI_MANIFEST, status=400), 400,
                 "MANIFEST_BLOB_UNKNOWN")


def test_end_7a_foreign_layer_with_urls_need_not_exist(client: RegistryClient, app: webtest.TestApp) -> None:
    client.push_blob("lib/app", CONFIG)
    foreign = descriptor("application/vnd.oci.image.layer.nondistributable.v1.tar+gzip", b"windows",
                         urls=["https://example.com/layer"])
    body = _manifest(layers=[foreign])
    client.put_manifest("lib/app", "win", body, OCI_MANIFEST)
    assert app.get("/v2/lib/app/manifests/win").body == body


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_end_7a_index_with_missing_child_manifest_blob_unknown(client: RegistryClient,
                                                               app: webtest.TestApp,
                                                               media_type: str) -> None:
    """An index whose child manifest is not in the repository -> MANIFEST_BLOB_UNKNOWN."""
    child = client.push_image("lib/app", None)
    ghost = _manifest(annotations={"ghost": "yes"})
    document = {"schemaVersion": 2, "mediaType": media_type,
                "manifests": [descriptor(OCI_MANIFEST, child.body), descriptor(OCI_MANIFEST, ghost)]}
    response = client.put_manifest("lib/app", "multi", canonical(document), media_type, status=400)
    error = assert_error(response, 400, "MANIFEST_BLOB_UNKNOWN")
    assert sha256(ghost) in json.dumps(error.get("detail"))
    document["manifests"] = document["manifests"][:1]
    client.put_manifest("lib/app", "multi", canonical(document), media_type)
    assert app.get("/v2/lib/app/manifests/multi").headers["Content-Type"] == media_type


def test_end_7a_child_in_another_repository_does_not_count(client: RegistryClient) -> None:
    child = client.push_image("other", None)
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                "manifests": [descriptor(OCI_MANIFEST, child.body)]}
    assert_error(client.put_manifest("lib/app", "multi", canonical(document), OCI_INDEX, status=400),
                 400, "MANIFEST_BLOB_UNKNOWN")


@pytest.mark.parametrize("body,content_type", [
    (canonical({"schemaVersion": 1, "name": "lib/app", "tag": "v1", "fsLayers": [], "history": []}),
     "application/vnd.docker.distribution.manifest.v1+json"),
    (canonical({"schemaVersion": 1, "name": "lib/app", "tag": "v1", "fsLayers": [], "signatures": []}),
     "application/vnd.docker.distribution.manifest.v1+prettyjws"),
    (canonical({"schemaVersion": 1, "name": "lib/app", "tag": "v1", "fsLayers": []}), "application/json"),
])
def test_end_7a_schema1_refused(client: RegistryClient, body: bytes, content_type: str) -> None:
    """Docker schema1 is refused with a clear MANIFEST_INVALID (code-6)."""
    error = assert_error(client.put_manifest("lib/app", "old", body, content_type, status=400), 400,
                         "MANIFEST_INVALID")
    assert "schema1" in error["message"]


@pytest.mark.parametrize("body", [
    b"not json",
    b"[]",
    b"\xff\xfe",
    b"",
    canonical({"schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": descriptor(OCI_CONFIG, CONFIG)}),
    canonical({"schemaVersion": 2, "mediaType": "application/x-unknown", "config": {}}),
    canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST}),
    canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {"digest": "sha256:zz"}}),
    canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": descriptor(OCI_CONFIG, CONFIG), "layers": "no"}),
    canonical({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": None}),
    pytest.param(b"[" * 100000, id="deeply-nested-json"),
], ids=lambda body: body[:24].decode("latin-1") if isinstance(body, bytes) else None)
def test_end_7a_invalid_manifest_400(client: RegistryClient, body: bytes) -> None:
    """Code-6 MANIFEST_INVALID for anything that is not a valid schema 2 manifest (never a 500)."""
    response = client.put_manifest("lib/app", "bad", body, OCI_MANIFEST, status="*")
    assert_error(response, 400, "MANIFEST_INVALID")


def test_end_7a_manifest_over_4_mib_413(client: RegistryClient, app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing Manifests: over the limit (4 MiB) -> 413."""
    big = _manifest(annotations={"pad": "x" * (4 * 1024 * 1024)})
    assert_error(client.put_manifest("lib/app", "big", big, OCI_MANIFEST, status=413), 413,
                 "MANIFEST_INVALID", "SIZE_INVALID")
    assert_error(app.get("/v2/lib/app/manifests/big", status=404), 404)


def test_end_7a_size_cap_exact_and_chunked() -> None:
    """The cap is inclusive, and holds for a chunked body without ``Content-Length`` too."""
    registry = Registry(storage=MemoryStorage(), max_manifest_size=2048)
    app = webtest.TestApp(registry)
    client = RegistryClient(app)
    client.push_blob("lib/app", CONFIG)
    client.push_blob("lib/app", LAYER)
    base = len(_manifest(annotations={"pad": ""}))
    exact = _manifest(annotations={"pad": "x" * (2048 - base)})
    assert len(exact) == 2048
    client.put_manifest("lib/app", "exact", exact, OCI_MANIFEST)
    over = _manifest(annotations={"pad": "x" * (2049 - base)})
    response = raw_call(registry, "PUT", "/v2/lib/app/manifests/over", over,
                        {"Content-Type": OCI_MANIFEST}, chunked=True)
    assert response.status == 413, response.body
    assert_api_version(response.headers)
    response = raw_call(registry, "PUT", "/v2/lib/app/manifests/exact2", exact,
                        {"Content-Type": OCI_MANIFEST}, chunked=True)
    assert response.status == 201, response.body


def test_end_7a_short_manifest_body_is_manifest_invalid(registry: Registry) -> None:
    """A manifest body that ends before its Content-Length did not arrive whole: 400
    MANIFEST_INVALID (the code the spec lists for end-7), not the blob upload's code."""
    body = _manifest()
    response = raw_call(registry, "PUT", "/v2/lib/app/manifests/v1", body[:20],
                        {"Content-Type": OCI_MANIFEST}, content_length=len(body))
    assert response.status == 400 and response.error_code == "MANIFEST_INVALID", response.body


def _with_layer_size(size: bytes) -> bytes:
    body = _manifest()
    layer_size = b'"size":%d' % len(LAYER)
    assert body.count(layer_size) == 1
    return body.replace(layer_size, b'"size":' + size)


#: Manifests that parse (Python's json took each) but are not valid: each was stored as sent.
PARSES_BUT_INVALID = {
    "utf-16": _manifest().decode().encode("utf-16"),
    "utf-16-le-no-bom": _manifest().decode().encode("utf-16-le"),
    "utf-32": _manifest().decode().encode("utf-32"),
    "utf-8-bom": b"\xef\xbb\xbf" + _manifest(),
    "nan-size": _with_layer_size(b"NaN"),
    "infinity-size": _with_layer_size(b"Infinity"),
    "float-size": _with_layer_size(b"1.5"),
    "integral-float-size": _with_layer_size(b"%d.0" % len(LAYER)),
    "size-beyond-int64": _with_layer_size(b"%d" % 2**63),
    "negative-size": _with_layer_size(b"-1"),
    "true-size": _with_layer_size(b"true"),
    "schema-version-2.0": _manifest().replace(b'"schemaVersion":2', b'"schemaVersion":2.0'),
    "schema-version-true": _manifest().replace(b'"schemaVersion":2', b'"schemaVersion":true'),
    "duplicate-key": _manifest().replace(b'"schemaVersion":2', b'"schemaVersion":2,"schemaVersion":2'),
    "duplicate-layers": _manifest().replace(b'"layers":', b'"layers":[],"layers":'),
    "annotation-not-string": _manifest(annotations={"a": 1}),
    "annotations-list": _manifest(annotations=[]),
    "lone-surrogate": _manifest(annotations={"a": "@"}).replace(b"@", b"\\udc00"),
}


@pytest.mark.parametrize("body", list(PARSES_BUT_INVALID.values()), ids=list(PARSES_BUT_INVALID))
def test_end_7a_manifest_that_parses_but_is_invalid_400_nothing_stored(
    client: RegistryClient, app: webtest.TestApp, blobs: None, body: bytes
) -> None:
    """oci-image-spec-manifest.md and descriptor.md (``schemaVersion`` *int*, ``size`` *int64*,
    string-string annotations), RFC 8259 8.1 and RFC 7493 (UTF-8 I-JSON): MANIFEST_INVALID, and
    neither the tag nor the digest is stored."""
    response = client.put_manifest("lib/app", "v1", body, OCI_MANIFEST, status="*")
    assert_error(response, 400, "MANIFEST_INVALID")
    assert_error(app.get("/v2/lib/app/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")
    assert_error(app.get(f"/v2/lib/app/manifests/{sha256(body)}", status=404), 404, "MANIFEST_UNKNOWN")
    assert json.loads(app.get("/v2/lib/app/tags/list").body)["tags"] == []


# -- subject and ?tag= -------------------------------------------------------------------------


def test_end_7a_subject_answers_oci_subject(client: RegistryClient, app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Pushing Manifests with Subject: ``OCI-Subject: <subject digest>``;
    a subject that does not exist (yet) is accepted."""
    missing = descriptor(OCI_MANIFEST, b"not pushed yet")
    referrer = client.push_image("lib/app", None, subject=missing,
                                 artifact_type="application/vnd.example.sig")
    assert referrer.response.headers["OCI-Subject"] == missing["digest"]
    plain = client.push_image("lib/app", "plain", layers=[b"other"])
    assert "OCI-Subject" not in plain.response.headers


def test_end_7b_put_by_digest_with_tags(client: RegistryClient, app: webtest.TestApp, blobs: None) -> None:
    """oci-distribution-spec.md: Pushing Manifests: ``?tag=`` with one ``OCI-Tag`` per accepted tag."""
    body = _manifest()
    digest = sha256(body)
    tags = ["1.2.3", "1.2", "1", "latest"]
    query = "&".join(f"tag={t}" for t in tags)
    response = client.put_manifest("lib/app", f"{digest}?{query}", body, OCI_MANIFEST)
    assert response.headers.getall("OCI-Tag") == tags
    for tag in tags:
        assert app.get(f"/v2/lib/app/manifests/{tag}").body == body
    assert json.loads(app.get("/v2/lib/app/tags/list").body)["tags"] == sorted(tags)


def test_end_7b_invalid_tag_parameter_400_nothing_stored(client: RegistryClient, app: webtest.TestApp,
                                                        blobs: None) -> None:
    body = _manifest()
    response = client.put_manifest("lib/app", f"{sha256(body)}?tag=ok&tag=-bad", body, OCI_MANIFEST,
                                   status=400)
    assert_error(response, 400, "MANIFEST_INVALID", "TAG_INVALID")
    assert_error(app.get("/v2/lib/app/manifests/ok", status=404), 404)


# -- delete (end-9) ----------------------------------------------------------------------------


def test_end_9_delete_tag_removes_only_the_tag(client: RegistryClient, app: webtest.TestApp,
                                               blobs: None) -> None:
    """oci-distribution-spec.md: Deleting tags: 202; the tag is 404, the manifest stays by digest."""
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    client.put_manifest("lib/app", "v1-alias", body, OCI_MANIFEST)
    response = app.delete("/v2/lib/app/manifests/v1", status=202)
    assert_api_version(response.headers)
    assert_error(app.get("/v2/lib/app/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")
    assert app.get(f"/v2/lib/app/manifests/{sha256(body)}").body == body
    assert app.get("/v2/lib/app/manifests/v1-alias").body == body
    assert_error(app.delete("/v2/lib/app/manifests/v1", status=404), 404, "MANIFEST_UNKNOWN")


def test_end_9_delete_digest_removes_manifest_and_its_tags(client: RegistryClient, app: webtest.TestApp,
                                                           blobs: None) -> None:
    """oci-distribution-spec.md: Deleting Manifests: 202; the digest and every tag on it are 404."""
    body, other = _manifest(), _manifest(annotations={"other": "1"})
    client.put_manifest("lib/app", "a", body, OCI_MANIFEST)
    client.put_manifest("lib/app", "b", body, OCI_MANIFEST)
    client.put_manifest("lib/app", "keep", other, OCI_MANIFEST)
    app.delete(f"/v2/lib/app/manifests/{sha256(body)}", status=202)
    for reference in ("a", "b", sha256(body)):
        assert_error(app.get(f"/v2/lib/app/manifests/{reference}", status=404), 404, "MANIFEST_UNKNOWN")
        assert_error(app.head(f"/v2/lib/app/manifests/{reference}", status=404), 404)
    assert app.get("/v2/lib/app/manifests/keep").body == other
    assert json.loads(app.get("/v2/lib/app/tags/list").body)["tags"] == ["keep"]
    assert_error(app.delete(f"/v2/lib/app/manifests/{sha256(body)}", status=404), 404, "MANIFEST_UNKNOWN")
    # Its blobs are still there (garbage collection is not a DELETE's business).
    assert app.get(f"/v2/lib/app/blobs/{sha256(LAYER)}").body == LAYER


def test_end_9_delete_in_unknown_repository_404(app: webtest.TestApp) -> None:
    assert_error(app.delete(f"/v2/no/repo/manifests/{sha256(b'x')}", status=404), 404,
                 "MANIFEST_UNKNOWN", "NAME_UNKNOWN")
    assert_error(app.delete("/v2/no/repo/manifests/latest", status=404), 404,
                 "MANIFEST_UNKNOWN", "NAME_UNKNOWN")


def test_end_9_delete_then_push_again(client: RegistryClient, app: webtest.TestApp, blobs: None) -> None:
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    app.delete(f"/v2/lib/app/manifests/{sha256(body)}", status=202)
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST)
    assert app.get("/v2/lib/app/manifests/v1").body == body


def test_end_7a_failed_push_leaves_storage_without_manifest(client: RegistryClient, storage: Storage) -> None:
    """A refused manifest leaves no revision, tag or blob a reader could see."""
    client.push_blob("lib/app", CONFIG)
    body = _manifest()
    client.put_manifest("lib/app", "v1", body, OCI_MANIFEST, status=400)
    keys = list(storage.list("repositories/"))
    assert not any("_manifests" in key for key in keys), keys


def test_end_7a_media_type_field_without_content_type_header(app: webtest.TestApp, registry: Registry,
                                                             blobs: None) -> None:
    """A manifest that declares ``mediaType`` is typed by it even when the PUT has no ``Content-Type``."""
    response = raw_call(registry, "PUT", "/v2/lib/app/manifests/v1", _manifest())
    assert response.status == 201, response.body
    assert app.get("/v2/lib/app/manifests/v1").headers["Content-Type"] == OCI_MANIFEST


def test_end_7a_untyped_manifest(app: webtest.TestApp, client: RegistryClient, registry: Registry,
                                 blobs: None) -> None:
    """No ``mediaType`` and no ``Content-Type``: an image manifest (it has ``config``) is OCI, the only
    format whose ``mediaType`` is optional (oci-image-spec-manifest.md); a ``Content-Type`` that names
    no manifest format is MANIFEST_INVALID."""
    document = json.loads(_manifest())
    del document["mediaType"]
    created = raw_call(registry, "PUT", "/v2/lib/app/manifests/v1", canonical(document))
    assert created.status == 201, created.body
    assert app.get("/v2/lib/app/manifests/v1").headers["Content-Type"] == OCI_MANIFEST
    response = client.put_manifest("lib/app", "v2", canonical(document), "application/octet-stream",
                                   status=400)
    assert_error(response, 400, "MANIFEST_INVALID")
