"""Docker token authentication: the registry side (docker-token-auth-token.md, -jwt.md, -scope.md).

:class:`TokenAuth` wants ``Authorization: Bearer <JWT>`` on every request. Without one, with
one that does not verify, or with one whose ``access`` claim falls short of what the request
needs, it answers 401 with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...``
(``error="invalid_token"`` / ``error="insufficient_scope"`` as RFC 6750 section 3.1 and the Go
registry do), so that clients fetch a token from ``realm`` and retry.

Tokens are checked with PyJWT against configured public keys only (PEM keys or certificates,
or a JWKS): ``alg`` must suit the key's type (RSA: RS*/PS*, EC: ES* of its curve, Ed25519/448:
EdDSA), so ``none`` and HMAC-with-the-public-key are refused before any key is tried. Keys
named inside a token (``jwk``, ``x5c``, ``jku``) are never trusted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from werkzeug.wrappers import Request

from ..extras import require
from ..errors import Unauthorized
from .base import Access
from .scope import ChallengeError, bearer_challenge
from .bearer import MAX_TOKEN_LENGTH, InvalidToken, bearer_token

jwt = require("jwt", "auth", "Docker token authentication")

__all__ = [
    "TokenAuth",
    "TokenIdentity",
    "VerificationKey",
    "InvalidToken",
    "KeyFileError",
    "bearer_token",
    "load_public_keys",
    "load_private_key",
    "key_id",
    "key_algorithms",
    "signing_algorithm",
    "REFRESH_TOKEN_USE",
]

PublicKey = Union[
    rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey
]
PrivateKey = Union[
    rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey
]

#: ``token_use`` claim of the issuer's refresh tokens; the registry never accepts those.
REFRESH_TOKEN_USE = "refresh"
MIN_RSA_BITS = 2048
_CURVE_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.DOTALL
)


class KeyFileError(ValueError):
    """A key file that cannot be used for tokens; the message names the file and the reason."""


def key_id(public_key: PublicKey) -> str:
    """The libtrust key ID the Go registry and docker_auth use as ``kid``.

    Base32 of the first 240 bits of SHA-256 over the DER SubjectPublicKeyInfo, in groups of
    four separated by ``:`` (e.g. ``PYYO:TEWU:...``).
    """
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def key_algorithms(public_key: object) -> tuple[str, ...]:
    """The JWS algorithms a public key may verify; raises :class:`KeyFileError` for others."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise KeyFileError(f"RSA keys need at least {MIN_RSA_BITS} bits")
        return ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        algorithm = _CURVE_ALGORITHMS.get(public_key.curve.name)
        if algorithm is None:
            raise KeyFileError(f"EC curve {public_key.curve.name} is not usable with JWS")
        return (algorithm,)
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return ("EdDSA",)
    raise KeyFileError(f"{type(public_key).__name__} keys cannot verify tokens")


def signing_algorithm(private_key: PrivateKey) -> str:
    """The JWS algorithm the issuer signs with for this key (RS256, ES256/384/512, EdDSA)."""
    return key_algorithms(private_key.public_key())[0]


@dataclass(frozen=True)
class VerificationKey:
    """A trusted public key, the algorithms it may verify, and its ``kid``."""

    key: Any
    algorithms: tuple[str, ...]
    kid: str | None
    source: str = ""

    @classmethod
    def from_public_key(
        cls, public_key: Any, *, kid: str | None = None, source: str = "", algorithm: str | None = None
    ) -> "VerificationKey":
        algorithms = key_algorithms(public_key)
        if algorithm is not None:
            if algorithm not in algorithms:
                raise KeyFileError(f"{source}: alg {algorithm} does not suit this key")
            algorithms = (algorithm,)
        return cls(public_key, algorithms, kid or key_id(public_key), source)


def _keys_from_jwks(data: Any, source: str) -> list[VerificationKey]:
    documents = data.get("keys") if isinstance(data, dict) and "keys" in data else [data]
    if not isinstance(documents, list) or not documents:
        raise KeyFileError(f"{source}: a JWKS needs a non-empty 'keys' list")
    keys = []
    for index, document in enumerate(documents):
        where = f"{source} key {index + 1}"
        if not isinstance(document, dict):
            raise KeyFileError(f"{where}: not a JSON object")
        if document.get("kty") == "oct":
            raise KeyFileError(f"{where}: symmetric (oct) keys are refused; use RSA, EC or OKP keys")
        if document.get("use") not in (None, "sig"):
            continue
        if "d" in document:
            raise KeyFileError(f"{where}: holds a private key; give the public JWKS only")
        try:
            jwk = jwt.PyJWK(document)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError) as exc:
            raise KeyFileError(f"{where}: {exc}") from None
        public_key = jwk.key
        keys.append(
            VerificationKey.from_public_key(
                public_key, kid=document.get("kid"), source=where, algorithm=document.get("alg")
            )
        )
    return keys


def _keys_from_pem(data: bytes, source: str) -> list[VerificationKey]:
    keys = []
    for block in _PEM_BLOCK.finditer(data):
        label = block.group(1).decode()
        try:
            if label == "CERTIFICATE":
                public_key: Any = x509.load_pem_x509_certificate(block.group(0)).public_key()
            elif label.endswith("PUBLIC KEY"):
                public_key = serialization.load_pem_public_key(block.group(0))
            elif label.endswith("PRIVATE KEY"):
                raise KeyFileError(
                    f"{source}: holds a private key; give the public key "
                    "(openssl pkey -in key.pem -pubout)"
                )
            else:
                continue
        except ValueError as exc:
            if isinstance(exc, KeyFileError):
                raise
            raise KeyFileError(f"{source}: unreadable {label}: {exc}") from None
        try:
            keys.append(VerificationKey.from_public_key(public_key, source=source))
        except KeyFileError as exc:
            raise KeyFileError(f"{source}: {exc}") from None
    return keys


def load_public_keys(
    paths: Iterable[str | os.PathLike[str]], *, private_keys: Iterable[PrivateKey] = ()
) -> list[VerificationKey]:
    """Trusted keys from PEM files (public keys, certificates, bundles) or JWKS JSON files.

    ``private_keys`` adds the public halves of signing keys (the built-in issuer's).
    """
    keys = [VerificationKey.from_public_key(k.public_key(), source="signing key") for k in private_keys]
    for path in paths:
        source = os.fspath(path)
        try:
            with open(source, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise KeyFileError(f"{source}: cannot read: {exc}") from None
        if data.lstrip().startswith(b"{"):
            try:
                document = json.loads(data)
            except ValueError as exc:
                raise KeyFileError(f"{source}: not valid JSON: {exc}") from None
            found = _keys_from_jwks(document, source)
        else:
            found = _keys_from_pem(data, source)
        if not found:
            raise KeyFileError(f"{source}: no public key, certificate or JWKS found")
        keys.extend(found)
    return keys


def load_private_key(path: str | os.PathLike[str], password: bytes | None = None) -> PrivateKey:
    """A PEM private key (RSA >= 2048 bits, EC P-256/384/521, Ed25519/Ed448) to sign with."""
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyFileError(f"{source}: cannot load a private key: {exc}") from None
    if not isinstance(
        key,
        (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey),
    ):
        raise KeyFileError(f"{source}: {type(key).__name__} keys cannot sign tokens")
    try:
        key_algorithms(key.public_key())
    except KeyFileError as exc:
        raise KeyFileError(f"{source}: {exc}") from None
    return key


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _normalize_type(kind: str) -> str:
    return kind.split("(", 1)[0]


@dataclass(frozen=True)
class TokenIdentity:
    """Who a verified token speaks for (``subject``, empty when anonymous) and what it grants."""

    subject: str
    access: Mapping[tuple[str, str], frozenset[str]]
    claims: Mapping[str, Any] = field(repr=False, default_factory=dict)

    @property
    def name(self) -> str | None:
        """The subject, ``None`` for an anonymous token (for :func:`policy.identity_name`)."""
        return self.subject or None

    def actions(self, access: Access) -> frozenset[str]:
        """The actions the token grants on ``access``'s resource (``*`` grants all)."""
        granted = self.access.get((access.type, access.name), frozenset())
        return access.actions if "*" in granted else granted & access.actions

    def allows(self, access: Access) -> bool:
        return access.actions <= self.actions(access)


def _parse_access(claim: Any) -> dict[tuple[str, str], frozenset[str]]:
    if claim is None:
        return {}
    if not isinstance(claim, list):
        raise InvalidToken("malformed access claim")
    access: dict[tuple[str, str], frozenset[str]] = {}
    for entry in claim:
        if not isinstance(entry, dict):
            raise InvalidToken("malformed access claim")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
        if actions is None:
            actions = []
        if (
            not isinstance(kind, str)
            or not isinstance(name, str)
            or not isinstance(actions, list)
            or not all(isinstance(a, str) for a in actions)
        ):
            raise InvalidToken("malformed access claim")
        key = (_normalize_type(kind), name)
        access[key] = access.get(key, frozenset()) | frozenset(actions)
    return access


class TokenAuth:
    """The auth hook for bearer JWTs from a token issuer trusted through its public keys.

    ``realm`` is the issuer's URL sent in challenges; a path (``/token``) is completed with the
    request's scheme and host, for the issuer served beside the registry. ``issuer`` is the
    expected ``iss`` (one or several), ``service`` the expected ``aud``; ``leeway`` seconds of
    clock skew are allowed on ``exp``/``nbf``/``iat``.
    """

    def __init__(
        self,
        realm: str,
        service: str,
        issuer: str | Sequence[str],
        keys: Sequence[VerificationKey],
        *,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
    ) -> None:
        if not keys:
            raise ValueError("TokenAuth needs at least one public key")
        self.realm = realm
        self.service = service
        self.issuers = (issuer,) if isinstance(issuer, str) else tuple(issuer)
        self.keys = tuple(keys)
        self.leeway = leeway
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)
        bearer_challenge(realm if not realm.startswith("/") else "http://h" + realm, service)

    def _candidates(self, algorithm: str, kid: Any) -> list[VerificationKey]:
        usable = [k for k in self.keys if algorithm in k.algorithms]
        named = [k for k in usable if kid is not None and k.kid == kid]
        return named or usable

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a token that verifies against a trusted key; else :class:`InvalidToken`."""
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError):
            raise InvalidToken("malformed token") from None
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm.lower() == "none":
            raise InvalidToken("unsigned token (alg none)")
        candidates = self._candidates(algorithm, header.get("kid"))
        if not candidates:
            raise InvalidToken(f"algorithm {algorithm} is not accepted for the configured keys")
        for key in candidates:
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key.key,
                    algorithms=[algorithm],
                    audience=self.service,
                    issuer=self.issuers,
                    options={
                        "require": ["exp", "iss", "aud"],
                        # Times are checked below against the injected clock.
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except jwt.InvalidAudienceError:
                raise InvalidToken(f"token is not for service {self.service}") from None
            except jwt.InvalidIssuerError:
                raise InvalidToken("token from an untrusted issuer") from None
            except jwt.MissingRequiredClaimError as exc:
                raise InvalidToken(f"token lacks the {exc.claim} claim") from None
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise InvalidToken(f"invalid token ({type(exc).__name__})") from None
            self._check_times(claims)
            if claims.get("token_use") == REFRESH_TOKEN_USE:
                raise InvalidToken("a refresh token is not an access token")
            return claims
        raise InvalidToken("signature does not verify with any trusted key")

    def _check_times(self, claims: Mapping[str, Any]) -> None:
        now = self.clock()
        expires, not_before = claims.get("exp"), claims.get("nbf")
        if expires is None or not _is_number(expires):
            raise InvalidToken("malformed exp claim")
        if now > float(expires) + self.leeway:
            raise InvalidToken("token expired")
        if not_before is not None:
            if not _is_number(not_before):
                raise InvalidToken("malformed nbf claim")
            if now < not_before - self.leeway:
                raise InvalidToken("token not yet valid")

    def identity(self, token: str) -> TokenIdentity:
        """Verify ``token`` and read its subject and ``access`` claim."""
        claims = self.verify(token)
        subject = claims.get("sub", "")
        if not isinstance(subject, str):
            raise InvalidToken("malformed sub claim")
        return TokenIdentity(subject, _parse_access(claims.get("access")), claims)

    def _realm(self, request: Request) -> str:
        if not self.realm.startswith("/"):
            return self.realm
        host = request.host
        if not re.fullmatch(r"[A-Za-z0-9.\-]+(:[0-9]+)?|\[[0-9A-Fa-f:.]+\](:[0-9]+)?", host):
            return self.realm
        return f"{request.scheme}://{host}{self.realm}"

    def challenge(self, request: Request, needed: Sequence[Access], error: str | None = None) -> str:
        """The ``Bearer`` challenge for ``needed`` (every scope, not just the missing ones)."""
        try:
            return bearer_challenge(self._realm(request), self.service, needed, error)
        except ChallengeError:
            return bearer_challenge(self.realm, self.service, (), error)

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        detail = [
            {"Type": a.type, "Name": a.name, "Action": action}
            for a in needed
            for action in sorted(a.actions)
        ] or None
        try:
            token = bearer_token(request.headers.get("Authorization"))
            if token is None:
                raise Unauthorized(detail, challenge=self.challenge(request, needed))
            identity = self.identity(token)
        except InvalidToken as exc:
            self.log.info("refused bearer token from %s: %s", request.remote_addr, exc)
            raise Unauthorized(
                detail,
                message=f"invalid token: {exc}",
                challenge=self.challenge(request, needed, "invalid_token"),
            ) from None
        if not all(identity.allows(access) for access in needed):
            self.log.info(
                "token of %r lacks scope for %s", identity.subject,
                " ".join(a.scope for a in needed),
            )
            raise Unauthorized(
                detail,
                message="insufficient scope",
                challenge=self.challenge(request, needed, "insufficient_scope"),
            )
        return identity

