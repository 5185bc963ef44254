"""Test helpers for users of docker-registry-wsgi (need pytest and hypothesis).

:class:`StorageSuite` is the storage protocol's conformance suite: subclass it with a
``storage`` fixture to check a backend (see :mod:`docker_registry_wsgi.testing.storage`).
"""

from .storage import StorageSuite

__all__ = ["StorageSuite"]
