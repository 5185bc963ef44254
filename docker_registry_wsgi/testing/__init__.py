"""Test helpers for users of docker-registry-wsgi.

:class:`RegistryClient` pushes and pulls through any WSGI app with the registry in it, in
process (see :mod:`docker_registry_wsgi.testing.client`; needs only werkzeug).
:class:`StorageSuite` is the storage protocol's conformance suite: subclass it with a
``storage`` fixture to check a backend (see :mod:`docker_registry_wsgi.testing.storage`; needs
pytest and hypothesis, so it is imported on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .client import (
    Image,
    PulledImage,
    RegistryClient,
    Response,
    StreamedResponse,
    UnclosedResponse,
    UnexpectedStatus,
    assert_oci_error,
)

if TYPE_CHECKING:
    from .storage import StorageSuite

__all__ = [
    "RegistryClient",
    "Response",
    "StreamedResponse",
    "Image",
    "PulledImage",
    "UnexpectedStatus",
    "UnclosedResponse",
    "assert_oci_error",
    "StorageSuite",
]


def __getattr__(name: str) -> Any:
    """``StorageSuite`` on first use, so the client works without pytest and hypothesis."""
    if name == "StorageSuite":
        from .storage import StorageSuite

        return StorageSuite
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
