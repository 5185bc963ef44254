"""Pull-through cache: upstream registries mirrored below namespaces, beside pushable repositories.

>>> from docker_registry_wsgi import Registry
>>> from docker_registry_wsgi.proxy import Mirror, Mirrors
>>> from docker_registry_wsgi.storage import MemoryStorage
>>> app = Registry(MemoryStorage(), mirrors=Mirrors([
...     Mirror("dockerhub", "https://registry-1.docker.io"),
...     Mirror("ghcr", "https://ghcr.io", tag_ttl=600),
... ]))

``dockerhub/library/alpine:3.20`` on this registry is then ``library/alpine:3.20`` on Docker Hub,
fetched on first pull and served from the storage after; names outside ``dockerhub/`` and
``ghcr/`` are ordinary repositories. See docs/mirroring.rst.
"""

from .config import Mirror, MirrorConfigError, parse_mirror
from .mirrors import MirrorRoute, Mirrors
from .upstream import Upstream, UpstreamError

__all__ = ["Mirror", "Mirrors", "MirrorRoute", "MirrorConfigError", "parse_mirror", "Upstream", "UpstreamError"]
