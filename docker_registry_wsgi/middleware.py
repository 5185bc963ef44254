"""Mount the registry at ``/v2`` of any WSGI site: ``/v2`` and ``/v2/...`` go to the registry,
every other path goes to the site, untouched.

Routing is on ``PATH_INFO``, the path *below* the site's own mount point. A registry request is
handed on the way :class:`werkzeug.middleware.dispatcher.DispatcherMiddleware` would hand it:
``SCRIPT_NAME`` gains ``/v2`` and ``PATH_INFO`` keeps the rest (``/v2/a/b`` -> ``/a/b``, ``/v2``
-> ``""``), so the registry sees itself mounted at ``/v2`` and builds its ``Location`` headers from
``SCRIPT_NAME``. The environ is copied, never modified in place, and ``wsgi.input`` is not
touched: the request body reaches the registry unread.

A site that itself lives under a prefix (``SCRIPT_NAME=/site``) serves the registry at
``/site/v2/``. Registry clients always call ``/v2/`` at the host root, so they reach it only
through a front proxy that forwards ``/v2/`` to ``/site/v2/``; the registry's ``Location``
headers then point below ``/site/v2/``, which the same proxy already forwards to the site.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from .routes import REGISTRY_PREFIX, is_registry_path
from .wsgi import WSGIApp

__all__ = ["RegistryMiddleware", "WSGIApp", "is_registry_path", "mounted_environ", "REGISTRY_PREFIX"]

def mounted_environ(environ: dict[str, Any], prefix: str) -> dict[str, Any]:
    """A copy of ``environ`` for an app mounted at ``prefix``, whose ``PATH_INFO`` starts with it.

    ``prefix`` moves from ``PATH_INFO`` to the end of ``SCRIPT_NAME``. A copy, so that the
    server's own view of the request (its access log reads ``PATH_INFO``) is unchanged.
    """
    inner = dict(environ)
    inner["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + prefix
    inner["PATH_INFO"] = environ.get("PATH_INFO", "")[len(prefix):]
    return inner


class RegistryMiddleware:
    """A WSGI app that sends ``/v2`` and ``/v2/...`` to ``registry`` and the rest to ``host_app``.

    ``extra`` mounts further WSGI apps beside the registry (e.g. ``{"/token": issuer}``): a path
    equal to a key or below it goes to that app, mounted at the key, the same way.
    """

    def __init__(
        self,
        host_app: WSGIApp,
        registry: WSGIApp,
        extra: dict[str, WSGIApp] | None = None,
    ) -> None:
        self.host_app = host_app
        self.registry = registry
        mounts = {REGISTRY_PREFIX: registry}
        for prefix, app in (extra or {}).items():
            if not prefix.startswith("/") or prefix.endswith("/") or prefix in mounts:
                raise ValueError(f"bad or duplicate mount point {prefix!r}")
            mounts[prefix] = app
        # Longest first, so that "/token/admin" would win over "/token".
        self._mounts = sorted(mounts.items(), key=lambda item: len(item[0]), reverse=True)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix, app in self._mounts:
            if path == prefix or path.startswith(prefix + "/"):
                return app(mounted_environ(environ, prefix), start_response)
        return self.host_app(environ, start_response)
