"""The refusal matrix: every registry endpoint x every way a caller can lack access.

Each case asserts the status (401 or 403), the challenge (Basic realm for htpasswd; for token
auth the Bearer realm/service, the request's full scope and the RFC 6750 error of
docker-token-auth-token.md "How to authenticate"), an OCI error body that holds no manifest,
blob, tag, upload or other repository data the request did not itself name, no content headers,
and an unchanged storage. Anonymous and unauthorized callers get the same answer for a
repository that exists and one that does not, so refusals tell nothing of existence either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import jwt
import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.htpasswd import HtpasswdAuth
from docker_registry_wsgi.auth.issuer import TokenIssuer
from docker_registry_wsgi.auth.policy import RulePolicy
from docker_registry_wsgi.auth.challenges import parse_challenges
from docker_registry_wsgi.auth.scope import format_scopes, parse_scopes
from docker_registry_wsgi.auth.throttle import FailureThrottle
from docker_registry_wsgi.auth.token import TokenAuth, key_id, load_public_keys
from docker_registry_wsgi.storage import MemoryStorage

from tests.handlers import OCI_MANIFEST, RegistryClient, canonical, descriptor, sha256

from .conftest import basic, bcrypt_line, public_pem

SERVICE, ISSUER, REALM = "registry.matrix", "issuer.matrix", "https://auth.matrix/token"
REPO, MISSING_REPO, OTHER_REPO = "secret/app", "secret/nothere", "secret/other"
TAG = "hidden-tag-7f3a"
LAYER = b"layer-bytes-that-must-never-leak-91c2"
CONFIG = b'{"architecture":"amd64","os":"linux","leak":"config-marker-5d1e"}'
NEW_BLOB = b"new-blob-marker-c0ffee"


@dataclass
class Populated:
    """What the registry holds before any refused request, and the markers that must not leak."""

    storage: MemoryStorage
    manifest_digest: str
    layer_digest: str
    upload_id: str
    secrets: tuple[str, ...]

    def snapshot(self) -> dict[str, bytes]:
        return {key: self.storage.read(key) for key in self.storage.list("")}


@pytest.fixture(scope="module")
def populated() -> Populated:
    storage = MemoryStorage()
    client = RegistryClient(webtest.TestApp(Registry(storage=storage)))
    image = client.push_image(REPO, TAG, layers=[LAYER], config=CONFIG)
    client.push_image(OTHER_REPO, "other-tag-2b9e", layers=[b"other-layer-marker-88aa"])
    location = client.start_upload(REPO).headers["Location"]
    upload_id = location.rstrip("/").rsplit("/", 1)[-1].split("?")[0]
    layer_digest = sha256(LAYER)
    secrets = (
        TAG, "other-tag-2b9e", OTHER_REPO, image.digest, layer_digest, sha256(CONFIG), upload_id,
        LAYER.decode(), "config-marker-5d1e", "other-layer-marker-88aa", '"schemaVersion"',
        "mediaType", "Docker-Content-Digest",
    )
    return Populated(storage, image.digest, layer_digest, upload_id, secrets)


@dataclass(frozen=True)
class Endpoint:
    """One method of one route, on ``repo``, and the access the registry must ask for it."""

    label: str
    method: str
    path: str
    needed: tuple[Access, ...]
    body: bytes = b""
    content_type: str | None = None

    def url(self, p: Populated) -> str:
        return self.path.format(repo=REPO, missing=MISSING_REPO, manifest=p.manifest_digest,
                                layer=p.layer_digest, upload=p.upload_id, new=sha256(NEW_BLOB),
                                other=OTHER_REPO)


def _repo(*actions: str, name: str = REPO) -> Access:
    return Access.repository(name, *actions)


NEW_MANIFEST = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": descriptor("application/vnd.oci.image.config.v1+json", CONFIG),
                          "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", LAYER)]})

ENDPOINTS = [
    Endpoint("base GET", "GET", "/v2/", ()),
    Endpoint("base HEAD", "HEAD", "/v2/", ()),
    Endpoint("catalog", "GET", "/v2/_catalog", (Access.catalog(),)),
    Endpoint("tags list", "GET", "/v2/{repo}/tags/list", (_repo("pull"),)),
    Endpoint("tags list (missing repo)", "GET", "/v2/{missing}/tags/list", (_repo("pull", name=MISSING_REPO),)),
    Endpoint("manifest GET by tag", "GET", f"/v2/{{repo}}/manifests/{TAG}", (_repo("pull"),)),
    Endpoint("manifest HEAD by tag", "HEAD", f"/v2/{{repo}}/manifests/{TAG}", (_repo("pull"),)),
    Endpoint("manifest GET by digest", "GET", "/v2/{repo}/manifests/{manifest}", (_repo("pull"),)),
    Endpoint("manifest GET (missing repo)", "GET", "/v2/{missing}/manifests/latest",
             (_repo("pull", name=MISSING_REPO),)),
    Endpoint("manifest PUT", "PUT", "/v2/{repo}/manifests/newtag", (_repo("pull", "push"),),
             NEW_MANIFEST, OCI_MANIFEST),
    Endpoint("manifest DELETE", "DELETE", "/v2/{repo}/manifests/{manifest}", (_repo("delete"),)),
    Endpoint("upload POST", "POST", "/v2/{repo}/blobs/uploads/", (_repo("pull", "push"),)),
    Endpoint("upload POST monolithic", "POST", "/v2/{repo}/blobs/uploads/?digest={new}",
             (_repo("pull", "push"),), NEW_BLOB, "application/octet-stream"),
    Endpoint("upload POST mount", "POST", "/v2/newrepo/blobs/uploads/?mount={layer}&from={repo}",
             (_repo("pull", "push", name="newrepo"), _repo("pull"))),
    Endpoint("upload GET status", "GET", "/v2/{repo}/blobs/uploads/{upload}", (_repo("push"),)),
    Endpoint("upload PATCH", "PATCH", "/v2/{repo}/blobs/uploads/{upload}", (_repo("push"),),
             NEW_BLOB, "application/octet-stream"),
    Endpoint("upload PUT", "PUT", "/v2/{repo}/blobs/uploads/{upload}?digest={new}", (_repo("push"),),
             NEW_BLOB, "application/octet-stream"),
    Endpoint("upload DELETE", "DELETE", "/v2/{repo}/blobs/uploads/{upload}", (_repo("push"),)),
    Endpoint("blob GET", "GET", "/v2/{repo}/blobs/{layer}", (_repo("pull"),)),
    Endpoint("blob HEAD", "HEAD", "/v2/{repo}/blobs/{layer}", (_repo("pull"),)),
    Endpoint("blob GET (missing repo)", "GET", "/v2/{missing}/blobs/{layer}", (_repo("pull", name=MISSING_REPO),)),
    Endpoint("blob DELETE", "DELETE", "/v2/{repo}/blobs/{layer}", (_repo("delete"),)),
    Endpoint("referrers GET", "GET", "/v2/{repo}/referrers/{manifest}", (_repo("pull"),)),
]


# -- the two auth set-ups --------------------------------------------------------------------

POLICY = RulePolicy.from_mapping({
    "groups": {"owners": ["alice"]},
    "rules": [
        {"repositories": ["*"], "users": ["@owners"], "actions": ["*"], "catalog": True},
        {"repositories": ["public/*"], "users": ["*"], "actions": ["pull"]},
    ],
})


@pytest.fixture(scope="module")
def htpasswd_app(populated: Populated, tmp_path_factory: pytest.TempPathFactory) -> webtest.TestApp:
    path = tmp_path_factory.mktemp("matrix") / "users.htpasswd"
    path.write_text(bcrypt_line("alice", "wonderland") + "\n" + bcrypt_line("bob", "builder") + "\n")
    # The matrix sends the same wrong password dozens of times; the failure throttle would answer
    # 429 after the tenth (tests/auth/test_throttle.py), so it is off here.
    no_throttle = FailureThrottle(limit=0, address_limit=0)
    return webtest.TestApp(Registry(storage=populated.storage,
                                    auth=HtpasswdAuth(path, policy=POLICY, realm="matrix",
                                                      throttle=no_throttle)))


@pytest.fixture(scope="module")
def token_app(populated: Populated, rsa_key: Any) -> webtest.TestApp:
    auth = TokenAuth(REALM, SERVICE, ISSUER, load_public_keys([], private_keys=[rsa_key]))
    return webtest.TestApp(Registry(storage=populated.storage, auth=auth))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(access: list[Access], **override: Any) -> dict[str, Any]:
    import time

    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "alice", "aud": SERVICE, "iat": now, "nbf": now, "exp": now + 300,
              "jti": "x", "access": [{"type": a.type, "name": a.name, "actions": sorted(a.actions)}
                                     for a in access]}
    claims.update(override)
    return claims


def _fewer(needed: tuple[Access, ...]) -> list[Access]:
    """The needed access minus one action: the first resource loses its first action."""
    if not needed:
        return []
    first, *rest = needed
    kept = sorted(first.actions)[1:]
    return [Access(first.type, first.name, frozenset(kept))] + list(rest)


@dataclass(frozen=True)
class Case:
    """One way of lacking access, and what the registry must answer."""

    label: str
    scheme: str  # "basic" or "token"
    status: int
    error: str | None  # the Bearer challenge's error parameter
    header: Callable[[Endpoint, Any, Any], str | None]  # (endpoint, rsa_key, other_key) -> Authorization
    refuses_base: bool = True


def _token(key: Any, claims: dict[str, Any], alg: str = "RS256") -> str:
    return "Bearer " + jwt.encode(claims, key, algorithm=alg, headers={"kid": key_id(key.public_key())})


def _alg_none(e: Endpoint, key: Any, other: Any) -> str:
    head = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"Bearer {head}.{_b64(json.dumps(_claims(list(e.needed))).encode())}."


def _hs256_public_key(e: Endpoint, key: Any, other: Any) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(_claims(list(e.needed))).encode())
    signature = hmac.new(public_pem(key), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"Bearer {head}.{body}.{_b64(signature)}"


def _tampered_signature(e: Endpoint, key: Any, other: Any) -> str:
    token = _token(key, _claims(list(e.needed)))
    head, body, signature = token.split(".")
    flipped = signature[:10] + ("A" if signature[10] != "A" else "B") + signature[11:]
    return f"{head}.{body}.{flipped}"


def _forged_claims(e: Endpoint, key: Any, other: Any) -> str:
    head, _, signature = _token(key, _claims([])).split(".")
    return f"{head}.{_b64(json.dumps(_claims(list(e.needed))).encode())}.{signature}"


CASES = [
    Case("basic: no credentials", "basic", 401, None, lambda e, k, o: None),
    Case("basic: wrong password", "basic", 401, None, lambda e, k, o: basic("alice", "wrong")),
    Case("basic: unknown user", "basic", 401, None, lambda e, k, o: basic("mallory", "wonderland")),
    Case("basic: malformed", "basic", 401, None, lambda e, k, o: "Basic %%%not-base64"),
    Case("basic: non-UTF-8", "basic", 401, None,
         lambda e, k, o: "Basic " + base64.b64encode(b"alice:\xff\xfe").decode()),
    Case("basic: user without access", "basic", 403, None, lambda e, k, o: basic("bob", "builder"),
         refuses_base=False),
    Case("token: none", "token", 401, None, lambda e, k, o: None),
    Case("token: expired", "token", 401, "invalid_token",
         lambda e, k, o: _token(k, _claims(list(e.needed), exp=1_600_000_000, nbf=1_599_999_000,
                                           iat=1_599_999_000))),
    Case("token: another repository", "token", 401, "insufficient_scope",
         lambda e, k, o: _token(k, _claims([Access.repository("public/else", "pull", "push", "delete")])),
         refuses_base=False),
    Case("token: another service", "token", 401, "invalid_token",
         lambda e, k, o: _token(k, _claims(list(e.needed), aud="other.service"))),
    Case("token: another issuer", "token", 401, "invalid_token",
         lambda e, k, o: _token(k, _claims(list(e.needed), iss="evil.issuer"))),
    Case("token: alg none", "token", 401, "invalid_token", _alg_none),
    Case("token: HS256 keyed with the public key", "token", 401, "invalid_token", _hs256_public_key),
    Case("token: tampered signature", "token", 401, "invalid_token", _tampered_signature),
    Case("token: forged claims", "token", 401, "invalid_token", _forged_claims),
    Case("token: untrusted key", "token", 401, "invalid_token",
         lambda e, k, o: _token(o, _claims(list(e.needed)))),
    Case("token: insufficient scope", "token", 401, "insufficient_scope",
         lambda e, k, o: _token(k, _claims(_fewer(e.needed))), refuses_base=False),
    Case("token: garbage", "token", 401, "invalid_token", lambda e, k, o: "Bearer \xff\xfe..\x01"),
    Case("token: Basic sent to a token registry", "token", 401, None,
         lambda e, k, o: basic("alice", "wonderland")),
]


def _parameters() -> Iterator[Any]:
    for case in CASES:
        for endpoint in ENDPOINTS:
            yield pytest.param(case, endpoint, id=f"{case.label} | {endpoint.label}")


@pytest.mark.parametrize("case,endpoint", list(_parameters()))
def test_refusal(case: Case, endpoint: Endpoint, populated: Populated, htpasswd_app: webtest.TestApp,
                 token_app: webtest.TestApp, rsa_key: Any, other_rsa_key: Any) -> None:
    app = htpasswd_app if case.scheme == "basic" else token_app
    url = endpoint.url(populated)
    authorization = case.header(endpoint, rsa_key, other_rsa_key)
    headers = {"Authorization": authorization} if authorization is not None else {}
    if endpoint.content_type:
        headers["Content-Type"] = endpoint.content_type
    before = populated.snapshot()
    kwargs: dict[str, Any] = {"headers": headers, "expect_errors": True}
    if endpoint.method in ("PUT", "POST", "PATCH"):
        kwargs["params"] = endpoint.body
    response = getattr(app, endpoint.method.lower())(url, **kwargs)

    assert populated.snapshot() == before, "a refused request changed the storage"
    if not endpoint.needed and not case.refuses_base:
        # /v2/ for a caller who did authenticate: allowed, and it says nothing.
        assert response.status_int == 200
        assert "WWW-Authenticate" not in response.headers
        return
    assert response.status_int == case.status, response.body[:300]
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    for header in ("Docker-Content-Digest", "Location", "Range", "Docker-Upload-UUID", "OCI-Subject"):
        assert header not in response.headers, header
    if case.status == 401:
        [challenge] = parse_challenges(response.headers["WWW-Authenticate"])
        if case.scheme == "basic":
            assert (challenge.scheme, dict(challenge.params)) == ("Basic", {"realm": "matrix"})
        else:
            assert challenge.scheme == "Bearer"
            assert challenge.params["realm"] == REALM and challenge.params["service"] == SERVICE
            assert parse_scopes(challenge.params.get("scope", "")) == parse_scopes(
                format_scopes(endpoint.needed))
            assert challenge.params.get("error") == case.error
    else:
        assert "WWW-Authenticate" not in response.headers
    if endpoint.method == "HEAD":
        assert response.body == b""
        return
    error = response.json["errors"][0]
    assert error["code"] == ("UNAUTHORIZED" if case.status == 401 else "DENIED")
    text = response.body.decode()
    requested = url + (endpoint.body.decode() if endpoint.body else "")
    leaked = [s for s in populated.secrets if s in text and s not in requested]
    assert not leaked, f"refusal body leaks {leaked}: {text[:300]}"


@pytest.mark.parametrize("scheme", ["basic", "token"])
def test_refusals_do_not_reveal_existence(scheme: str, populated: Populated, htpasswd_app: webtest.TestApp,
                                          token_app: webtest.TestApp) -> None:
    """The same answer for a repository, manifest and blob that exist and ones that do not."""
    app = htpasswd_app if scheme == "basic" else token_app
    headers = {"Authorization": basic("bob", "builder")} if scheme == "basic" else {}
    pairs = [(f"/v2/{REPO}/manifests/{TAG}", f"/v2/{REPO}/manifests/no-such-tag"),
             (f"/v2/{REPO}/blobs/{populated.layer_digest}", f"/v2/{REPO}/blobs/{sha256(b'nothing')}"),
             (f"/v2/{REPO}/tags/list", f"/v2/{MISSING_REPO}/tags/list")]
    for existing, missing in pairs:
        a = app.get(existing, headers=headers, expect_errors=True)
        b = app.get(missing, headers=headers, expect_errors=True)
        # Basic: bob is authenticated and may not pull: 403 DENIED (code-12). Token: no token at
        # all: 401 UNAUTHORIZED (code-11) with the challenge (oci-distribution-spec.md "Error Codes").
        status, code = (403, "DENIED") if scheme == "basic" else (401, "UNAUTHORIZED")
        assert a.status_int == b.status_int == status, (existing, a.status, b.status)
        assert a.json["errors"][0]["code"] == b.json["errors"][0]["code"] == code
        normalize = lambda r, path: r.body.replace(path.rsplit("/", 1)[-1].encode(), b"X").replace(
            REPO.encode(), b"R").replace(MISSING_REPO.encode(), b"R")
        assert normalize(a, existing) == normalize(b, missing)


def test_issuer_tokens_of_a_user_without_access_are_refused(populated: Populated, ec_key: Any,
                                                            tmp_path: Path) -> None:
    """The whole flow in-process: bob gets a token from the issuer, with nothing in it."""
    path = tmp_path / "users.htpasswd"
    path.write_text(bcrypt_line("alice", "wonderland") + "\n" + bcrypt_line("bob", "builder") + "\n")
    from docker_registry_wsgi.auth.htpasswd import HtpasswdFile

    users = HtpasswdFile(path)
    issuer = webtest.TestApp(TokenIssuer(ec_key, issuer=ISSUER, service=SERVICE, verify=users.verify,
                                         policy=POLICY))
    registry = webtest.TestApp(Registry(storage=populated.storage, auth=TokenAuth(
        REALM, SERVICE, ISSUER, load_public_keys([], private_keys=[ec_key]))))
    for user, password, status in (("bob", "builder", 401), ("alice", "wonderland", 200)):
        token = issuer.get("/", {"service": SERVICE, "scope": f"repository:{REPO}:pull"},
                           headers={"Authorization": basic(user, password)}).json["token"]
        res = registry.get(f"/v2/{REPO}/manifests/{TAG}", headers={"Authorization": f"Bearer {token}"},
                           status=status)
        if status == 401:
            assert 'error="insufficient_scope"' in res.headers["WWW-Authenticate"]
            assert TAG not in res.text and populated.manifest_digest not in res.text
        else:
            assert res.headers["Docker-Content-Digest"] == populated.manifest_digest
    issuer.get("/", {"service": SERVICE}, headers={"Authorization": basic("bob", "nope")}, status=401)
    issuer.get("/", {"service": SERVICE}, headers={"Authorization": basic("nobody", "x")}, status=401)
