"""TokenAuth: bearer JWT verification and challenges (docker-token-auth-jwt.md "Verifying the
token"; docker-token-auth-token.md "How to authenticate"; RFC 6750 section 3.1)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any, Callable

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.challenges import parse_challenges
from docker_registry_wsgi.auth.scope import parse_scopes
from docker_registry_wsgi.auth.token import (
    InvalidToken,
    KeyFileError,
    TokenAuth,
    TokenIdentity,
    VerificationKey,
    key_id,
    load_private_key,
    load_public_keys,
)
from docker_registry_wsgi.errors import Unauthorized

from .conftest import FakeClock, make_request, private_pem, public_pem

SERVICE, ISSUER, REALM = "registry.test", "issuer.test", "https://auth.test/token"
PULL_A = [Access.repository("team/a", "pull")]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(clock: FakeClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock.now)
    base = {
        "iss": ISSUER, "sub": "alice", "aud": SERVICE, "exp": now + 300, "nbf": now, "iat": now,
        "jti": "j", "access": [{"type": "repository", "name": "team/a", "actions": ["pull", "push"]}],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, payload: dict[str, Any], algorithm: str, **headers: Any) -> str:
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": key_id(key.public_key()), **headers})


@pytest.fixture
def auth(rsa_key: rsa.RSAPrivateKey, ec_key: Any, ed25519_key: Any, clock: FakeClock) -> TokenAuth:
    keys = load_public_keys([], private_keys=[rsa_key, ec_key, ed25519_key])
    return TokenAuth(REALM, SERVICE, ISSUER, keys, clock=clock)


def authorize(auth: TokenAuth, token: str | None, needed: list[Access] = PULL_A) -> object:
    return auth.authorize(make_request(None if token is None else f"Bearer {token}"), needed)


def refused(auth: TokenAuth, header: str | bytes | None, needed: list[Access] = PULL_A) -> dict[str, str]:
    with pytest.raises(Unauthorized) as info:
        auth.authorize(make_request(header), needed)
    [challenge] = parse_challenges(info.value.headers["WWW-Authenticate"])
    assert challenge.scheme == "Bearer"
    assert challenge.params["realm"] == REALM and challenge.params["service"] == SERVICE
    if needed:
        assert parse_scopes(challenge.params["scope"]) == parse_scopes([a.scope for a in needed])
    return dict(challenge.params)


@pytest.mark.parametrize("key_name,algorithm", [
    ("rsa_key", "RS256"), ("rsa_key", "PS256"), ("rsa_key", "RS512"), ("ec_key", "ES256"),
    ("ed25519_key", "EdDSA"),
])
def test_valid_tokens(request: pytest.FixtureRequest, auth: TokenAuth, clock: FakeClock,
                      key_name: str, algorithm: str) -> None:
    key = request.getfixturevalue(key_name)
    identity = authorize(auth, sign(key, claims(clock), algorithm),
                         [Access.repository("team/a", "pull", "push")])
    assert isinstance(identity, TokenIdentity) and identity.name == "alice"


def test_no_token_challenges_without_error(auth: TokenAuth) -> None:
    params = refused(auth, None)
    assert "error" not in params
    assert refused(auth, "Basic YTpi").get("error") is None  # Basic is not a bearer token


def test_base_endpoint_needs_a_token_but_no_scope(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    params = refused(auth, None, [])
    assert "scope" not in params
    assert authorize(auth, sign(rsa_key, claims(clock, access=None), "RS256"), []) is not None


def test_anonymous_token(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    identity = authorize(auth, sign(rsa_key, claims(clock, sub=""), "RS256"))
    assert isinstance(identity, TokenIdentity) and identity.name is None


@pytest.mark.parametrize("advance,ok", [(300 + 29, True), (300 + 31, False)])
def test_expiry_with_leeway(auth: TokenAuth, clock: FakeClock, rsa_key: Any, advance: int, ok: bool) -> None:
    token = sign(rsa_key, claims(clock), "RS256")
    clock.now += advance
    if ok:
        authorize(auth, token)
    else:
        params = refused(auth, f"Bearer {token}")
        assert params["error"] == "invalid_token"


def test_not_before(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    token = sign(rsa_key, claims(clock, nbf=int(clock.now) + 120), "RS256")
    assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"
    clock.now += 100
    authorize(auth, token)


@pytest.mark.parametrize("override", [
    {"iss": "evil.test"}, {"aud": "other-service"}, {"aud": None}, {"exp": None}, {"iss": None},
    {"exp": "tomorrow"}, {"exp": True}, {"nbf": "x"}, {"sub": 5}, {"access": "all"},
    {"access": [{"type": "repository", "name": "team/a", "actions": "pull"}]},
    {"access": [["repository", "team/a", ["pull"]]]}, {"token_use": "refresh"},
])
def test_bad_claims_are_invalid_tokens(auth: TokenAuth, clock: FakeClock, rsa_key: Any,
                                       override: dict[str, Any]) -> None:
    token = sign(rsa_key, claims(clock, **override), "RS256")
    assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"


def test_audience_list_containing_the_service(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    authorize(auth, sign(rsa_key, claims(clock, aud=["x", SERVICE]), "RS256"))


@pytest.mark.parametrize("needed", [
    [Access.repository("team/b", "pull")],  # another repository
    [Access.repository("team/a", "pull", "push", "delete")],  # more actions
    [Access.catalog()],
    [Access.repository("team/a", "pull"), Access.repository("other", "pull")],  # mount source
])
def test_insufficient_scope(auth: TokenAuth, clock: FakeClock, rsa_key: Any, needed: list[Access]) -> None:
    token = sign(rsa_key, claims(clock), "RS256")
    params = refused(auth, f"Bearer {token}", needed)
    assert params["error"] == "insufficient_scope"


def test_wildcard_and_resource_class(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    access = [{"type": "registry", "name": "catalog", "actions": ["*"]},
              {"type": "repository(plugin)", "name": "p", "actions": ["*"]}]
    token = sign(rsa_key, claims(clock, access=access), "RS256")
    authorize(auth, token, [Access.catalog(), Access.repository("p", "pull", "push", "delete")])


def test_alg_none_is_refused(auth: TokenAuth, clock: FakeClock) -> None:
    for alg in ("none", "None", "NONE"):
        header = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
        token = f"{header}.{b64(json.dumps(claims(clock)).encode())}."
        assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"


def test_hmac_with_the_public_key_is_refused(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    """The classic confusion: HS256 keyed with the PEM (or DER) the registry trusts."""
    for secret in (public_pem(rsa_key), public_pem(rsa_key).strip()):
        header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key_id(rsa_key.public_key())}).encode())
        body = b64(json.dumps(claims(clock)).encode())
        signature = b64(hmac.new(secret, f"{header}.{body}".encode(), hashlib.sha256).digest())
        assert refused(auth, f"Bearer {header}.{body}.{signature}")["error"] == "invalid_token"


def test_wrong_algorithm_for_key(auth: TokenAuth, clock: FakeClock, ec_key: Any) -> None:
    with pytest.raises(Unauthorized):  # ES384 with a P-256 key: no configured key does ES384
        authorize(auth, sign(ec.generate_private_key(ec.SECP384R1()), claims(clock), "ES384"))


def test_tampered_token(auth: TokenAuth, clock: FakeClock, rsa_key: Any) -> None:
    header, body, signature = sign(rsa_key, claims(clock), "RS256").split(".")
    forged = dict(claims(clock), access=[{"type": "repository", "name": "team/b", "actions": ["push"]}])
    for token in (f"{header}.{b64(json.dumps(forged).encode())}.{signature}",
                  f"{header}.{body}.{signature[:-4]}AAAA", f"{header}.{body}."):
        assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"


def test_untrusted_key_and_foreign_kid(auth: TokenAuth, clock: FakeClock, other_rsa_key: Any,
                                       rsa_key: Any) -> None:
    assert refused(auth, f"Bearer {sign(other_rsa_key, claims(clock), 'RS256')}")["error"] == "invalid_token"
    # A kid the registry does not know still verifies with a trusted key (other kid schemes).
    authorize(auth, sign(rsa_key, claims(clock), "RS256", kid="some-other-kid"))
    # ...and a trusted kid on a token signed by another key does not.
    token = sign(other_rsa_key, claims(clock), "RS256", kid=key_id(rsa_key.public_key()))
    assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"


def test_embedded_jwk_is_not_trusted(auth: TokenAuth, clock: FakeClock, other_rsa_key: Any) -> None:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(other_rsa_key.public_key()))
    token = jwt.encode(claims(clock), other_rsa_key, algorithm="RS256", headers={"jwk": jwk})
    assert refused(auth, f"Bearer {token}")["error"] == "invalid_token"


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer ", "Bearer a b", "Bearer not.a.jwt", "Bearer ....", "Bearer " + "a" * 20000,
    b"Bearer \xff\xfe.\x80", "Bearer e30.e30.", "Bearer eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    "bearer x.y.z",
])
def test_garbage_is_401_with_challenge(auth: TokenAuth, header: str | bytes) -> None:
    refused(auth, header)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_any_header_bytes_give_401(auth_factory: Callable[[], TokenAuth], data: bytes) -> None:
    auth = auth_factory()
    for header in (data, b"Bearer " + data):
        with pytest.raises(Unauthorized):
            auth.authorize(make_request(header), PULL_A)


@pytest.fixture(scope="module")
def auth_factory(rsa_key: Any) -> Callable[[], TokenAuth]:
    keys = load_public_keys([], private_keys=[rsa_key])
    return lambda: TokenAuth(REALM, SERVICE, ISSUER, keys)


def test_relative_realm_uses_the_request_host(rsa_key: Any) -> None:
    auth = TokenAuth("/token", SERVICE, ISSUER, load_public_keys([], private_keys=[rsa_key]))
    with pytest.raises(Unauthorized) as info:
        auth.authorize(make_request(base_url="http://127.0.0.1:5123/"), PULL_A)
    [challenge] = parse_challenges(info.value.headers["WWW-Authenticate"])
    assert challenge.params["realm"] == "http://127.0.0.1:5123/token"
    with pytest.raises(Unauthorized) as info:
        auth.authorize(make_request(headers={"Host": 'evil"host'}), PULL_A)
    assert parse_challenges(info.value.headers["WWW-Authenticate"])[0].params["realm"] == "/token"


def test_several_issuers(rsa_key: Any, clock: FakeClock) -> None:
    auth = TokenAuth(REALM, SERVICE, ["a", "b"], load_public_keys([], private_keys=[rsa_key]), clock=clock)
    authorize(auth, sign(rsa_key, claims(clock, iss="b"), "RS256"))


# -- key files ------------------------------------------------------------------------------

def test_load_pem_certificate_bundle_and_jwks(tmp_path: Path, rsa_key: Any, ec_key: Any,
                                              ed25519_key: Any, clock: FakeClock) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    import datetime

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(ec_key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(ec_key, hashes.SHA256()))
    from cryptography.hazmat.primitives import serialization
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + public_pem(rsa_key))
    jwks = tmp_path / "jwks.json"
    jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(ed25519_key.public_key()))
    jwk.update(kid="ed-1", use="sig")
    jwks.write_text(json.dumps({"keys": [jwk]}))
    keys = load_public_keys([bundle, jwks])
    assert [k.algorithms[0] for k in keys] == ["ES256", "RS256", "EdDSA"]
    assert keys[2].kid == "ed-1"
    auth = TokenAuth(REALM, SERVICE, ISSUER, keys, clock=clock)
    authorize(auth, jwt.encode(claims(clock), ed25519_key, algorithm="EdDSA", headers={"kid": "ed-1"}))
    authorize(auth, sign(ec_key, claims(clock), "ES256"))


@pytest.mark.parametrize("content,message", [
    (b"", "no public key"),
    (b"{}", "keys"),
    (b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric"),
    (b"{not json", "not valid JSON"),
    (b"-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n", "unreadable"),
])
def test_bad_key_files(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "k"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=message):
        load_public_keys([path])


def test_private_key_in_public_key_file_is_refused(tmp_path: Path, rsa_key: Any) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(private_pem(rsa_key))
    with pytest.raises(KeyFileError, match="private key"):
        load_public_keys([path])
    assert isinstance(load_private_key(path), rsa.RSAPrivateKey)


def test_small_rsa_keys_are_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    path = tmp_path / "k.pem"
    path.write_bytes(public_pem(small))
    with pytest.raises(KeyFileError, match="2048"):
        load_public_keys([path])


def test_libtrust_key_id_form(rsa_key: Any) -> None:
    kid = key_id(rsa_key.public_key())
    parts = kid.split(":")
    assert len(parts) == 12 and all(len(p) == 4 and p.isalnum() and p.isupper() or p.isdigit() for p in parts)


def test_token_auth_needs_keys() -> None:
    with pytest.raises(ValueError):
        TokenAuth(REALM, SERVICE, ISSUER, [])
    assert isinstance(VerificationKey, type)
    with pytest.raises(InvalidToken):
        TokenAuth(REALM, SERVICE, ISSUER, load_public_keys([], private_keys=[
            ec.generate_private_key(ec.SECP256R1())])).verify("x")
