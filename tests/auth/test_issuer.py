"""TokenIssuer: the token endpoint (docker-token-auth-token.md "Requesting a Token") and the
OAuth2 form (docker-token-auth-oauth.md), driven through WSGI with WebTest."""

from __future__ import annotations

import base64
import hashlib
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jwt
import pytest
import webtest

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.htpasswd import HtpasswdFile
from docker_registry_wsgi.auth.issuer import TokenIssuer
from docker_registry_wsgi.auth.policy import RulePolicy
from docker_registry_wsgi.auth.token import InvalidToken, TokenAuth, TokenIdentity, load_public_keys

from .conftest import FakeClock, basic, bcrypt_line

SERVICE, ISSUER = "registry.test", "issuer.test"

POLICY = {
    "anonymous_pull": ["public/*"],
    "rules": [
        {"repositories": ["*"], "users": ["alice"], "actions": ["*"], "catalog": True},
        {"repositories": ["team/*"], "users": ["bob"], "actions": ["pull"]},
    ],
}


@pytest.fixture
def users(tmp_path: Path) -> HtpasswdFile:
    path = tmp_path / "users.htpasswd"
    path.write_text(bcrypt_line("alice", "wonderland") + "\n" + bcrypt_line("bob", "builder") + "\n")
    return HtpasswdFile(path)


@pytest.fixture
def issuer(ec_key: Any, users: HtpasswdFile, clock: FakeClock) -> TokenIssuer:
    return TokenIssuer(
        ec_key, issuer=ISSUER, service=SERVICE, verify=users.verify,
        credential_stamp=users.password_hash, policy=RulePolicy.from_mapping(POLICY), clock=clock,
    )


@pytest.fixture
def app(issuer: TokenIssuer) -> webtest.TestApp:
    return webtest.TestApp(issuer)


@pytest.fixture
def registry_auth(ec_key: Any, clock: FakeClock) -> TokenAuth:
    return TokenAuth("/token", SERVICE, ISSUER, load_public_keys([], private_keys=[ec_key]), clock=clock)


def claims_of(registry_auth: TokenAuth, token: str) -> TokenIdentity:
    return registry_auth.identity(token)


def test_get_with_credentials_grants_the_intersection(app: webtest.TestApp, registry_auth: TokenAuth,
                                                      clock: FakeClock) -> None:
    res = app.get("/", {"service": SERVICE, "scope": ["repository:team/a:pull,push", "repository:other:pull"],
                        "account": "bob"}, headers={"Authorization": basic("bob", "builder")})
    assert res.status_int == 200 and res.content_type == "application/json"
    assert res.headers["Cache-Control"] == "no-store"
    body = res.json
    assert body["token"] == body["access_token"]
    assert body["expires_in"] >= 60
    assert body["issued_at"] == datetime.fromtimestamp(int(clock.now), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["scope"] == "repository:team/a:pull"
    identity = claims_of(registry_auth, body["token"])
    assert identity.subject == "bob"
    assert identity.allows(Access.repository("team/a", "pull"))
    assert not identity.allows(Access.repository("team/a", "push"))
    assert not identity.allows(Access.repository("other", "pull"))
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"]


def test_anonymous_gets_public_pull_only(app: webtest.TestApp, registry_auth: TokenAuth) -> None:
    res = app.get("/", {"service": SERVICE, "scope": "repository:public/x:pull,push repository:team/a:pull"})
    identity = claims_of(registry_auth, res.json["token"])
    assert identity.subject == "" and res.json["scope"] == "repository:public/x:pull"
    assert "refresh_token" not in res.json


def test_login_probe_without_scope(app: webtest.TestApp, registry_auth: TokenAuth) -> None:
    # `docker login` / `skopeo login`: no scope, offline_token=true, client_id.
    res = app.get("/", {"service": SERVICE, "offline_token": "true", "client_id": "docker", "account": "alice"},
                  headers={"Authorization": basic("alice", "wonderland")})
    assert res.json["scope"] == "" and res.json["refresh_token"]
    assert claims_of(registry_auth, res.json["token"]).subject == "alice"


@pytest.mark.parametrize("authorization", [basic("alice", "nope"), basic("mallory", "x"), "Basic !!!",
                                           "Basic " + base64.b64encode(b"\xff:\xff").decode()])
def test_get_with_wrong_credentials_is_401(app: webtest.TestApp, authorization: str) -> None:
    res = app.get("/", {"service": SERVICE, "scope": "repository:public/x:pull"},
                  headers={"Authorization": authorization}, status=401)
    assert res.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert "token" not in res.json and res.json["error"] == "invalid_client"


def test_account_must_match(app: webtest.TestApp) -> None:
    app.get("/", {"service": SERVICE, "account": "bob"}, headers={"Authorization": basic("alice", "wonderland")},
            status=400)


@pytest.mark.parametrize("params", [{}, {"service": "other"}, {"service": SERVICE, "scope": "repository:A:pull"},
                                    {"service": SERVICE, "scope": "nonsense"}])
def test_bad_get_requests_are_400(app: webtest.TestApp, params: dict[str, str]) -> None:
    res = app.get("/", params, status=400)
    assert res.json["error"] in ("invalid_request", "invalid_scope")


def test_post_password_and_refresh_grants(app: webtest.TestApp, registry_auth: TokenAuth) -> None:
    res = app.post("/", {"grant_type": "password", "username": "alice", "password": "wonderland",
                         "service": SERVICE, "client_id": "test", "access_type": "offline",
                         "scope": "repository:x/y:pull,push registry:catalog:*"})
    body = res.json
    assert body["scope"] == "repository:x/y:pull,push registry:catalog:*"
    refresh = body["refresh_token"]
    assert claims_of(registry_auth, body["access_token"]).allows(Access.catalog())
    # The refresh token is not an access token for the registry.
    with pytest.raises(InvalidToken):
        registry_auth.identity(refresh)
    res = app.post("/", {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
                         "client_id": "test", "scope": "repository:z:delete"})
    assert res.json["refresh_token"] == refresh and res.json["scope"] == "repository:z:delete"
    assert claims_of(registry_auth, res.json["access_token"]).subject == "alice"


def test_refresh_token_of_removed_user_is_refused(app: webtest.TestApp, users: HtpasswdFile) -> None:
    refresh = app.post("/", {"grant_type": "password", "username": "bob", "password": "builder",
                             "service": SERVICE, "access_type": "offline"}).json["refresh_token"]
    Path(users.path).write_text(bcrypt_line("alice", "wonderland") + "\n# bob removed, file grew\n")
    res = app.post("/", {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE}, status=400)
    assert res.json["error"] == "invalid_grant"


def _rewrite(path: Path, text: str) -> None:
    """Replace the users file with a later mtime, whatever the clock's resolution."""
    before = path.stat()
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def _refresh(app: webtest.TestApp, token: str, status: int = 200) -> webtest.TestResponse:
    return app.post("/", {"grant_type": "refresh_token", "refresh_token": token, "service": SERVICE},
                    status=status)


def _offline_login(app: webtest.TestApp, user: str, password: str) -> str:
    return app.post("/", {"grant_type": "password", "username": user, "password": password,
                          "service": SERVICE, "access_type": "offline"}).json["refresh_token"]


def test_refresh_tokens_end_when_the_password_changes(app: webtest.TestApp, users: HtpasswdFile) -> None:
    path = Path(users.path)
    alice_line, bob_line = path.read_text().splitlines()
    alice_refresh = _offline_login(app, "alice", "wonderland")
    bob_refresh = _offline_login(app, "bob", "builder")
    _refresh(app, alice_refresh)
    # `htpasswd -B users.htpasswd alice`: a new line for alice, bob's untouched.
    _rewrite(path, bcrypt_line("alice", "looking-glass") + "\n" + bob_line + "\n")
    res = _refresh(app, alice_refresh, 400)
    assert res.json["error"] == "invalid_grant" and "password changed" in res.json["error_description"]
    assert "access_token" not in res.json
    _refresh(app, bob_refresh)  # other users keep theirs
    new_refresh = _offline_login(app, "alice", "looking-glass")
    _refresh(app, new_refresh)
    # Setting the same password again writes a new salt: old refresh tokens end as well.
    _rewrite(path, bcrypt_line("alice", "looking-glass") + "\n" + bob_line + "\n")
    _refresh(app, new_refresh, 400)
    # Putting the old line back restores the old binding: it is the entry that counts.
    _rewrite(path, alice_line + "\n" + bob_line + "\n")
    _refresh(app, alice_refresh)


def test_refresh_tokens_of_a_removed_user_end(app: webtest.TestApp, users: HtpasswdFile) -> None:
    refresh = _offline_login(app, "bob", "builder")
    _rewrite(Path(users.path), bcrypt_line("alice", "wonderland") + "\n")
    res = _refresh(app, refresh, 400)
    assert res.json["error"] == "invalid_grant" and "no longer exists" in res.json["error_description"]


def test_refresh_binding_reveals_nothing_of_the_hash(issuer: TokenIssuer, users: HtpasswdFile,
                                                     ec_key: Any) -> None:
    token = issuer.issue_refresh("alice", SERVICE)
    claims = jwt.decode(token, ec_key.public_key(), algorithms=["ES256"], audience=ISSUER,
                        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False})
    entry = users.password_hash("alice")
    assert entry is not None
    binding = claims["cred"]
    assert binding == issuer.binding("alice")
    assert entry not in token and entry[7:29] not in token  # neither the hash nor its salt
    unkeyed = base64.urlsafe_b64encode(hashlib.sha256(f"alice\0{entry}".encode()).digest()).rstrip(b"=").decode()
    assert binding != unkeyed


def test_the_binding_key_comes_from_the_signing_key(ec_key: Any, other_rsa_key: Any, users: HtpasswdFile) -> None:
    """Every worker (and a restart) with the same key agrees; another key does not."""
    def make(key: Any) -> TokenIssuer:
        return TokenIssuer(key, issuer=ISSUER, service=SERVICE, verify=users.verify,
                           credential_stamp=users.password_hash)

    assert make(ec_key).binding("alice") == make(ec_key).binding("alice")
    assert make(ec_key).binding("alice") != make(other_rsa_key).binding("alice")
    assert make(ec_key).binding("alice") != make(ec_key).binding("bob")
    assert make(ec_key).binding("nobody") is None


def test_unbound_refresh_tokens_are_refused_once_binding_is_on(ec_key: Any, users: HtpasswdFile,
                                                              app: webtest.TestApp) -> None:
    """A refresh token from before the upgrade (no ``cred`` claim) carries no binding to check."""
    unbound = TokenIssuer(ec_key, issuer=ISSUER, service=SERVICE, verify=users.verify)
    token = unbound.issue_refresh("alice", SERVICE)
    assert "cred" not in jwt.decode(token, options={"verify_signature": False})
    res = _refresh(app, token, 400)
    assert res.json["error"] == "invalid_grant"


def test_empty_basic_credentials_get_an_anonymous_token(app: webtest.TestApp, registry_auth: TokenAuth) -> None:
    res = app.get("/", {"service": SERVICE, "scope": "repository:public/x:pull repository:team/a:pull"},
                  headers={"Authorization": "Basic Og=="})
    assert claims_of(registry_auth, res.json["token"]).subject == ""
    assert res.json["scope"] == "repository:public/x:pull" and "refresh_token" not in res.json


def test_expired_or_foreign_refresh_tokens(app: webtest.TestApp, issuer: TokenIssuer, clock: FakeClock,
                                           other_rsa_key: Any) -> None:
    refresh = issuer.issue_refresh("alice", SERVICE)
    access, _ = issuer.issue("alice", SERVICE, [])
    foreign = TokenIssuer(other_rsa_key, issuer=ISSUER, service=SERVICE, verify=lambda u, p: None)
    for token in (access, foreign.issue_refresh("alice", SERVICE), "garbage", ""):
        app.post("/", {"grant_type": "refresh_token", "refresh_token": token, "service": SERVICE}, status=400)
    app.post("/", {"grant_type": "refresh_token", "refresh_token": refresh, "service": "other"}, status=400)
    clock.now += issuer.refresh_expires_in + 1
    app.post("/", {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE}, status=400)


@pytest.mark.parametrize("form,error", [
    ({"grant_type": "password", "username": "alice", "password": "x"}, "invalid_grant"),
    ({"grant_type": "password", "password": "x"}, "invalid_request"),
    ({"grant_type": "authorization_code"}, "unsupported_grant_type"),
    ({}, "unsupported_grant_type"),
])
def test_bad_post_requests(app: webtest.TestApp, form: dict[str, str], error: str) -> None:
    res = app.post("/", {"service": SERVICE, **form}, status=400)
    assert res.json["error"] == error and "access_token" not in res.json


def test_post_needs_a_form(app: webtest.TestApp) -> None:
    app.post("/", b'{"grant_type": "password"}', content_type="application/json", status=400)
    app.post("/", b"x=" + b"a" * 70000, content_type="application/x-www-form-urlencoded", status=413)


def test_other_methods_and_paths(app: webtest.TestApp) -> None:
    res = app.put("/", status=405)
    assert res.headers["Allow"] == "GET, POST"
    app.get("/elsewhere", {"service": SERVICE}, status=404)


def test_expires_in_is_at_least_60(ec_key: Any, clock: FakeClock, registry_auth: TokenAuth) -> None:
    issuer = TokenIssuer(ec_key, issuer=ISSUER, service=SERVICE, verify=lambda u, p: None, expires_in=5,
                         clock=clock)
    res = webtest.TestApp(issuer).get("/", {"service": SERVICE})
    assert res.json["expires_in"] == 60
    clock.now += 59
    registry_auth.identity(res.json["token"])


@pytest.mark.parametrize("key_name,alg", [("rsa_key", "RS256"), ("ec_key", "ES256"), ("ed25519_key", "EdDSA")])
def test_signing_algorithms(request: pytest.FixtureRequest, key_name: str, alg: str, clock: FakeClock) -> None:
    key = request.getfixturevalue(key_name)
    issuer = TokenIssuer(key, issuer=ISSUER, service=SERVICE, verify=lambda u, p: u, clock=clock)
    token, _ = issuer.issue("u", SERVICE, [Access.repository("a", "pull")])
    assert jwt.get_unverified_header(token)["alg"] == alg
    auth = TokenAuth("/token", SERVICE, ISSUER, load_public_keys([], private_keys=[key]), clock=clock)
    assert auth.identity(token).allows(Access.repository("a", "pull"))
