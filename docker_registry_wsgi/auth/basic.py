"""HTTP Basic authentication against any password check, with an access policy on top."""

from __future__ import annotations

from typing import Callable, Sequence

from werkzeug.wrappers import Request

from ..errors import Denied, Unauthorized
from .base import Access, AccessPolicy

__all__ = ["BasicAuth", "AllowAuthenticated"]

#: ``verify(username, password)`` returns an identity, or ``None`` when the pair is wrong.
PasswordCheck = Callable[[str, str], object]


class AllowAuthenticated:
    """The default policy: any authenticated user may do everything; anonymous nothing."""

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        return access.actions if identity is not None else frozenset()


class BasicAuth:
    """Authenticate with ``Authorization: Basic`` and authorize with an :class:`AccessPolicy`.

    Missing or wrong credentials get 401 and a ``Basic`` challenge, unless the policy grants the
    needed access to anonymous callers; an authenticated user short of access gets 403.
    """

    def __init__(
        self,
        verify: PasswordCheck,
        policy: AccessPolicy | None = None,
        realm: str = "docker-registry-wsgi",
    ) -> None:
        self.verify = verify
        self.policy: AccessPolicy = policy or AllowAuthenticated()
        self.challenge = f'Basic realm="{realm}"'

    def authenticate(self, request: Request) -> object:
        """Return the identity of the request's credentials, ``None`` if it has none."""
        credentials = request.authorization
        if credentials is None or credentials.type != "basic":
            return None
        identity = self.verify(credentials.username or "", credentials.password or "")
        if identity is None:
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
