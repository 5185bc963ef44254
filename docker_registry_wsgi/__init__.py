"""A container registry (OCI Distribution Spec v1.1, Docker Registry HTTP API V2) as a WSGI app.

>>> from docker_registry_wsgi import Registry
>>> from docker_registry_wsgi.storage import MemoryStorage
>>> app = Registry(storage=MemoryStorage())
"""

from .app import Registry
from .version import __version__

__all__ = ["Registry", "__version__"]
