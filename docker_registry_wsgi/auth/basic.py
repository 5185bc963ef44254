"""HTTP Basic authentication against any password check, with an access policy on top."""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from typing import Sequence

from werkzeug.wrappers import Request

from ..errors import Denied, TooManyRequests, Unauthorized
from .base import Access, AccessPolicy
from .credentials import CachedPasswordCheck, PasswordCheck
from .scope import format_challenge
from .throttle import FailureThrottle, Throttled

__all__ = [
    "BasicAuth",
    "AllowAuthenticated",
    "MalformedCredentials",
    "PasswordCheck",
    "parse_basic_credentials",
]

#: Longest ``Authorization`` header value looked at; longer ones are refused unread.
MAX_CREDENTIALS = 8192


class MalformedCredentials(ValueError):
    """An ``Authorization: Basic`` header that is not base64 of UTF-8 ``user:password``."""


def parse_basic_credentials(header: str | None) -> tuple[str, str] | None:
    """``(username, password)`` of a ``Basic`` header; ``None`` when there are no credentials.

    ``None`` stands for an absent header, another scheme, and the empty pair ``:`` (``Basic Og==``),
    which skopeo and podman send after a Basic challenge when they have no credentials: all three
    are anonymous callers. Raises :class:`MalformedCredentials` for a Basic header that cannot be
    decoded (bad base64, non-UTF-8, no colon, an empty user name with a password) so that callers
    answer 401 instead of guessing.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    value = value.strip()
    if not value or len(value) > MAX_CREDENTIALS:
        raise MalformedCredentials("empty or oversized Basic credentials")
    try:
        decoded = b64decode(value.encode("ascii"), validate=True).decode("utf-8")
    except (UnicodeError, binascii.Error, ValueError) as exc:
        raise MalformedCredentials("Basic credentials are not base64 of UTF-8 text") from exc
    username, colon, password = decoded.partition(":")
    if colon and not username and not password:
        return None
    if not colon or not username:
        raise MalformedCredentials("Basic credentials have no user name")
    return username, password


class AllowAuthenticated:
    """The default policy: any authenticated user may do everything; anonymous nothing."""

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        return access.actions if identity is not None else frozenset()


class BasicAuth:
    """Authenticate with ``Authorization: Basic`` and authorize with an :class:`AccessPolicy`.

    Missing or wrong credentials get 401 and a ``Basic`` challenge, unless the policy grants the
    needed access to anonymous callers; an authenticated user short of access gets 403. With a
    ``throttle``, a user name or client address with too many recent failures gets 429
    ``TOOMANYREQUESTS`` and ``Retry-After`` instead of a password check, except for a pair that
    ``cached`` (default: ``verify.cached`` of a :class:`CachedPasswordCheck`) still remembers.
    """

    def __init__(
        self,
        verify: PasswordCheck,
        policy: AccessPolicy | None = None,
        realm: str = "docker-registry-wsgi",
        throttle: FailureThrottle | None = None,
        cached: PasswordCheck | None = None,
    ) -> None:
        self.verify = verify
        self.throttle = throttle
        if cached is None and isinstance(verify, CachedPasswordCheck):
            cached = verify.cached
        self.cached = cached
        self.policy: AccessPolicy = policy or AllowAuthenticated()
        self.challenge = format_challenge("Basic", {"realm": realm})
        self.log = logging.getLogger(__name__)

    def authenticate(self, request: Request) -> object:
        """Return the identity of the request's credentials, ``None`` if it has none."""
        try:
            credentials = parse_basic_credentials(request.headers.get("Authorization"))
        except MalformedCredentials as exc:
            self.log.info("refused malformed Basic credentials from %s: %s", request.remote_addr, exc)
            raise Unauthorized(message="malformed credentials", challenge=self.challenge) from None
        if credentials is None:
            return None
        if self.throttle is None:
            identity = self.verify(*credentials)
        else:
            try:
                identity = self.throttle.check(self.verify, *credentials, request.remote_addr,
                                               cached=self.cached)
            except Throttled as exc:
                raise TooManyRequests(
                    {"retry_after": exc.retry_after}, message=str(exc),
                    headers={"Retry-After": str(exc.retry_after)},
                ) from None
        if identity is None:
            self.log.info(
                "refused credentials of user %r from %s", credentials[0], request.remote_addr
            )
            raise Unauthorized(message="invalid username or password", challenge=self.challenge)
        return identity

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        identity = self.authenticate(request)
        if identity is None and not needed:
            # /v2/ itself: clients probe it to learn the scheme before sending credentials.
            raise Unauthorized(challenge=self.challenge)
        for access in needed:
            missing = access.actions - self.policy.granted(identity, access)
            if missing:
                if identity is None:
                    raise Unauthorized(challenge=self.challenge)
                raise Denied({"scope": access.scope, "missing": sorted(missing)})
        return identity
