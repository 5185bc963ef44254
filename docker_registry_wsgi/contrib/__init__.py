"""Mount the registry in Flask, Pyramid and Django sites, configured the way each one configures.

One module per framework, each imported only by the sites that use it, so that the library
never depends on a web framework: :mod:`.flask` (an ``init_app`` extension), :mod:`.pyramid`
(``config.include``), :mod:`.django` (wrap ``wsgi.py``'s application, auth from
``django.contrib.auth``). This module holds what they share: turning a framework's settings
into a :class:`~docker_registry_wsgi.app.Registry`.
"""

from __future__ import annotations

import os
from typing import Any

from ..app import Registry
from ..auth.base import Auth
from ..options import ConfigurationError, parse_size
from ..storage.base import Storage
from ..storage.filesystem import FilesystemStorage

__all__ = ["build_registry", "parse_size", "ConfigurationError"]


def build_registry(
    *,
    root: str | os.PathLike[str] | None = None,
    storage: Storage | None = None,
    auth: Auth | None = None,
    max_manifest_size: int | str | None = None,
    root_setting: str = "root",
) -> Registry:
    """The registry a site's settings describe: ``storage``, or a filesystem one at ``root``.

    ``root_setting`` names the setting in error messages (``DOCKER_REGISTRY_ROOT``, ...).
    """
    if storage is None:
        if not root:
            raise ConfigurationError(
                f"{root_setting} is not set: name the folder that holds the registry's data"
            )
        storage = FilesystemStorage(root)
    if auth is not None and not isinstance(auth, Auth):
        raise ConfigurationError(f"the registry's auth hook has no authorize() method: {auth!r}")
    options: dict[str, Any] = {}
    if max_manifest_size not in (None, ""):
        options["max_manifest_size"] = parse_size(max_manifest_size, "max_manifest_size")
    return Registry(storage, auth, **options)
