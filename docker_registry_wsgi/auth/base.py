"""The auth hook: who may do what, asked once per request by the WSGI app.

The app works out the :class:`Access` a request needs (a repository and its actions, or
``registry:catalog:*``) and calls :meth:`Auth.authorize`. The hook either returns an identity
(any object; ``None`` for anonymous) or raises :class:`~docker_registry_wsgi.errors.Unauthorized`
(401, with the ``WWW-Authenticate`` challenge) or :class:`~docker_registry_wsgi.errors.Denied`
(403). The app knows nothing else of users.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from werkzeug.wrappers import Request

from ..access import DELETE, PULL, PUSH, Access
from ..errors import Denied

__all__ = ["Access", "Auth", "AccessPolicy", "AllowAll", "ReadOnly", "PULL", "PUSH", "DELETE"]

@runtime_checkable
class Auth(Protocol):
    """Decides whether a request may have the access it needs."""

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        """Return the caller's identity, or raise ``Unauthorized`` / ``Denied``.

        ``needed`` is empty for ``/v2/`` itself: a scheme that authenticates should still
        challenge there, since clients (``docker login``) probe it to find the scheme.
        """
        ...


@runtime_checkable
class AccessPolicy(Protocol):
    """Which actions an identity (``None`` = anonymous) is granted on a resource."""

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        """The subset of ``access.actions`` that ``identity`` may perform."""
        ...


class AllowAll:
    """The default hook: everyone may do everything. For trusted networks and tests."""

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        return None


class ReadOnly:
    """Anyone may pull and list; pushing and deleting are denied with 403."""

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        for access in needed:
            if access.type == "repository" and not access.actions <= {PULL}:
                raise Denied({"scope": access.scope}, message="this registry is read-only")
        return None
