"""The token issuer: a WSGI app implementing the token endpoint of the Docker token auth spec.

``GET ?service=&scope=&account=`` with optional Basic credentials (docker-token-auth-token.md,
"Requesting a Token") and the OAuth2 ``POST`` form with the ``password`` and ``refresh_token``
grants (docker-token-auth-oauth.md). The issuer authenticates the caller with any
``verify(username, password)`` callable (e.g. :meth:`HtpasswdFile.verify`), grants the
intersection of what was asked and what the :class:`AccessPolicy` allows (never an error,
as the spec says: the registry refuses later), and signs a JWT the registry's
:class:`~docker_registry_wsgi.auth.token.TokenAuth` verifies.

Refresh tokens are bound to the user's credentials when a ``credential_stamp`` is given (e.g.
:meth:`HtpasswdFile.password_hash`): they carry an HMAC of the user's current password hash,
keyed with a secret derived from the signing key, so a changed password or a removed user ends
them, and the token reveals nothing of the hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from ..extras import require
from .base import Access, AccessPolicy
from .basic import AllowAuthenticated, MalformedCredentials, PasswordCheck, parse_basic_credentials
from .scope import ScopeError, format_challenge, format_scopes, parse_scopes
from .throttle import FailureThrottle, Throttled
from .token import REFRESH_TOKEN_USE, PrivateKey, key_id, signing_algorithm

jwt = require("jwt", "auth", "Docker token authentication")

__all__ = ["TokenIssuer"]

#: The spec: "a token should never be returned with less than 60 seconds to live".
MIN_EXPIRES_IN = 60
MAX_FORM_SIZE = 64 * 1024
#: Claim of a refresh token holding its credential binding (see :meth:`TokenIssuer.binding`).
CREDENTIAL_CLAIM = "cred"
_BINDING_INFO = b"docker-registry-wsgi refresh token credential binding v1"

StartResponse = Callable[..., Any]


class _Refused(Exception):
    """An error response of the token endpoint, OAuth2 style (RFC 6749 section 5.2)."""

    def __init__(self, status: int, error: str, description: str, challenge: str | None = None,
                 retry_after: int | None = None):
        super().__init__(description)
        self.status, self.error, self.description, self.challenge = status, error, description, challenge
        self.retry_after = retry_after


class TokenIssuer:
    """WSGI app serving the token endpoint; mount it where ``TokenAuth.realm`` points.

    ``service`` is the audience the issuer signs for (one or several names); ``issuer`` is
    its ``iss``. Refresh tokens are JWTs of their own kind (``token_use`` ``refresh``, audience
    the issuer) that the registry never accepts as access tokens. ``credential_stamp(user)``
    (e.g. :meth:`HtpasswdFile.password_hash`) returns something that changes with the user's
    password, ``None`` for a user who is gone: refresh tokens are bound to it and end when it
    changes. Without it, ``user_exists`` (e.g. ``name in htpasswd_file``) at least ends the
    refresh tokens of removed users. ``throttle`` and ``cached`` work as in :class:`BasicAuth`.
    """

    def __init__(
        self,
        private_key: PrivateKey,
        *,
        issuer: str,
        service: str | Iterable[str],
        verify: PasswordCheck,
        policy: AccessPolicy | None = None,
        expires_in: int = 300,
        refresh_expires_in: int = 30 * 86400,
        user_exists: Callable[[str], bool] | None = None,
        credential_stamp: Callable[[str], str | None] | None = None,
        realm: str = "docker-registry-wsgi token issuer",
        clock: Callable[[], float] = time.time,
        logger: logging.Logger | None = None,
        throttle: FailureThrottle | None = None,
        cached: PasswordCheck | None = None,
    ) -> None:
        self.private_key = private_key
        self.public_key = private_key.public_key()
        self.algorithm = signing_algorithm(private_key)
        self.kid = key_id(self.public_key)
        self.issuer = issuer
        self.services = frozenset({service} if isinstance(service, str) else service)
        self.verify = verify
        self.policy: AccessPolicy = policy or AllowAuthenticated()
        self.expires_in = max(int(expires_in), MIN_EXPIRES_IN)
        self.refresh_expires_in = int(refresh_expires_in)
        self.user_exists = user_exists
        self.credential_stamp = credential_stamp
        self.throttle = throttle
        self.cached = cached
        # The binding key: derived from the signing key, so every worker and every restart
        # with the same key agree, and it is as secret as the key itself.
        der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
        self._binding_key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                                 info=_BINDING_INFO).derive(der)
        self.challenge = format_challenge("Basic", {"realm": realm})
        self.clock = clock
        self.log = logger or logging.getLogger(__name__)

    # -- signing -------------------------------------------------------------------------

    def grant(self, identity: object, requested: Iterable[Access]) -> list[Access]:
        """What ``identity`` gets of ``requested``: the policy's intersection, empty ones dropped."""
        granted = []
        for access in requested:
            actions = frozenset(self.policy.granted(identity, access)) & access.actions
            if actions:
                granted.append(Access(access.type, access.name, actions))
        return granted

    def _sign(self, claims: Mapping[str, Any]) -> str:
        token: str = jwt.encode(
            dict(claims), self.private_key, algorithm=self.algorithm,
            headers={"kid": self.kid, "typ": "JWT"},
        )
        return token

    def issue(self, subject: str, service: str, access: Iterable[Access]) -> tuple[str, int]:
        """A signed access token for ``subject`` and its issue time (Unix seconds)."""
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": service,
            "exp": now + self.expires_in,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(18),
            "access": [
                {"type": a.type, "name": a.name, "actions": sorted(a.actions)} for a in access
            ],
        }
        return self._sign(claims), now

    def binding(self, subject: str) -> str | None:
        """HMAC of ``subject``'s current credential stamp under the binding key; ``None`` if gone."""
        if self.credential_stamp is None:
            return None
        stamp = self.credential_stamp(subject)
        if stamp is None:
            return None
        message = subject.encode("utf-8", "surrogatepass") + b"\0" + stamp.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._binding_key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue_refresh(self, subject: str, service: str) -> str:
        """A refresh token: good at this issuer only, for ``subject`` and ``service``.

        With a ``credential_stamp``, it holds the :meth:`binding` of the user's credentials now.
        """
        now = int(self.clock())
        claims: dict[str, Any] = {
            "iss": self.issuer, "sub": subject, "aud": self.issuer, "service": service,
            "token_use": REFRESH_TOKEN_USE, "iat": now, "nbf": now,
            "exp": now + self.refresh_expires_in, "jti": secrets.token_urlsafe(18),
        }
        binding = self.binding(subject)
        if binding is not None:
            claims[CREDENTIAL_CLAIM] = binding
        return self._sign(claims)

    def _refresh_subject(self, token: str, service: str) -> str:
        try:
            claims = jwt.decode(
                token, self.public_key, algorithms=[self.algorithm], audience=self.issuer,
                issuer=self.issuer, options={"require": ["exp", "sub"], "verify_exp": False,
                                             "verify_nbf": False, "verify_iat": False},
            )
        except (jwt.PyJWTError, ValueError, TypeError):
            raise _Refused(400, "invalid_grant", "invalid refresh token") from None
        expires = claims.get("exp")
        if (
            claims.get("token_use") != REFRESH_TOKEN_USE
            or not isinstance(expires, int)
            or isinstance(expires, bool)
            or self.clock() > expires
        ):
            raise _Refused(400, "invalid_grant", "invalid or expired refresh token")
        if claims.get("service") != service:
            raise _Refused(400, "invalid_grant", "refresh token is for another service")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise _Refused(400, "invalid_grant", "invalid refresh token")
        if self.user_exists is not None and not self.user_exists(subject):
            raise _Refused(400, "invalid_grant", "the refresh token's user no longer exists")
        if self.credential_stamp is not None:
            expected = self.binding(subject)
            if expected is None:
                raise _Refused(400, "invalid_grant", "the refresh token's user no longer exists")
            bound = claims.get(CREDENTIAL_CLAIM)
            if not isinstance(bound, str) or not hmac.compare_digest(bound.encode(), expected.encode()):
                self.log.info("token request: refused a refresh token of %r issued before its "
                              "password changed", subject)
                raise _Refused(400, "invalid_grant",
                               "the user's password changed since the refresh token was issued")
        return subject

    # -- HTTP ----------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        request.max_content_length = MAX_FORM_SIZE
        request.max_form_memory_size = MAX_FORM_SIZE
        try:
            if request.path not in ("", "/"):
                raise _Refused(404, "not_found", "no such endpoint")
            if request.method == "GET":
                response = self._get(request)
            elif request.method == "POST":
                response = self._post(request)
            else:
                raise _Refused(405, "invalid_request", "use GET or POST")
        except _Refused as refused:
            response = self._error(refused)
            if refused.status == 405:
                response.headers["Allow"] = "GET, POST"
        except HTTPException as exc:  # e.g. a form over MAX_FORM_SIZE
            response = self._error(_Refused(exc.code or 400, "invalid_request", str(exc.description)))
        except Exception:  # never a traceback to a client: log it, answer 400/500 JSON
            self.log.exception("token request failed")
            response = self._error(_Refused(500, "server_error", "internal error"))
        return response(environ, start_response)

    def _error(self, refused: _Refused) -> Response:
        response = self._json({"error": refused.error, "error_description": refused.description,
                               "details": refused.description}, refused.status)
        if refused.challenge:
            response.headers["WWW-Authenticate"] = refused.challenge
        if refused.retry_after is not None:
            response.headers["Retry-After"] = str(refused.retry_after)
        return response

    @staticmethod
    def _json(document: Mapping[str, Any], status: int = 200) -> Response:
        response = Response(json.dumps(document), status=status, content_type="application/json")
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response

    def _service(self, params: MultiDict[str, str]) -> str:
        service = params.get("service", "")
        if service not in self.services:
            raise _Refused(400, "invalid_request", f"unknown service {service!r}")
        return service

    @staticmethod
    def _scopes(values: list[str]) -> list[Access]:
        try:
            return parse_scopes(values)
        except ScopeError as exc:
            raise _Refused(400, "invalid_scope", str(exc)) from None

    def _password_ok(self, username: str, password: str, request: Request) -> bool:
        """Check a password through the throttle, if any; 429 for a throttled caller."""
        try:
            if self.throttle is None:
                identity = self.verify(username, password)
            else:
                identity = self.throttle.check(self.verify, username, password, request.remote_addr,
                                               cached=self.cached)
        except Throttled as exc:
            raise _Refused(429, "too_many_requests", str(exc), retry_after=exc.retry_after) from None
        if identity is None:
            self.log.info("token request: refused credentials of %r from %s", username,
                          request.remote_addr)
        return identity is not None

    def _authenticate(self, username: str, password: str, request: Request) -> str:
        if not self._password_ok(username, password, request):
            raise _Refused(401, "invalid_client", "invalid username or password", self.challenge)
        return username

    def _token_response(
        self, identity: str | None, service: str, requested: list[Access], refresh: str | None
    ) -> Response:
        granted = self.grant(identity, requested)
        token, issued = self.issue(identity or "", service, granted)
        self.log.info("issued token for %r on %s: %s", identity or "", service,
                      format_scopes(granted) or "(no access)")
        document: dict[str, Any] = {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": datetime.fromtimestamp(issued, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "scope": format_scopes(granted),
        }
        if refresh is not None:
            document["refresh_token"] = refresh
        return self._json(document)

    def _get(self, request: Request) -> Response:
        params = request.args
        service = self._service(params)
        requested = self._scopes(params.getlist("scope"))
        try:
            credentials = parse_basic_credentials(request.headers.get("Authorization"))
        except MalformedCredentials as exc:
            raise _Refused(401, "invalid_client", str(exc), self.challenge) from None
        identity = None
        if credentials is not None:
            identity = self._authenticate(*credentials, request)
            account = params.get("account")
            if account and account != identity:
                raise _Refused(400, "invalid_request", "account does not match the credentials")
        refresh = None
        if identity is not None and params.get("offline_token", "").lower() == "true":
            refresh = self.issue_refresh(identity, service)
        return self._token_response(identity, service, requested, refresh)

    def _post(self, request: Request) -> Response:
        if request.mimetype != "application/x-www-form-urlencoded":
            raise _Refused(400, "invalid_request", "send an application/x-www-form-urlencoded form")
        form = request.form
        service = self._service(form)
        requested = self._scopes(form.getlist("scope"))
        grant_type = form.get("grant_type", "")
        if grant_type == "password":
            username, password = form.get("username", ""), form.get("password", "")
            if not username:
                raise _Refused(400, "invalid_request", "the password grant needs a username")
            if not self._password_ok(username, password, request):
                raise _Refused(400, "invalid_grant", "invalid username or password")
            refresh = (
                self.issue_refresh(username, service)
                if form.get("access_type") == "offline" else None
            )
            return self._token_response(username, service, requested, refresh)
        if grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            subject = self._refresh_subject(token, service)
            return self._token_response(subject, service, requested, token)
        raise _Refused(400, "unsupported_grant_type", f"unsupported grant_type {grant_type!r}")

