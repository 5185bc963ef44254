"""Pyramid integration: ``config.include("docker_registry_wsgi.contrib.pyramid")``.

The include adds a tween above every other one (``under=INGRESS``) that hands ``/v2`` and
``/v2/...`` to the registry and everything else down the site's own tween chain. The registry
is built once, when the WSGI app is made, from the settings (the ``[app:main]`` section of the
ini file)::

    docker_registry.root = %(here)s/registry-data
    docker_registry.auth = mysite.registry:make_auth
    docker_registry.max_manifest_size = 4MiB

``docker_registry.auth`` names (dotted, ``module:attr`` or ``module.attr``) either an auth hook
object or a factory ``make_auth(settings) -> Auth``; unset means no authentication. Inside
the hook, :func:`pyramid.threadlocal.get_current_request` returns the site's request, so a
password check can reach request-bound services.

The tween runs after ``NewRequest`` subscribers: one that reads ``request.body`` or
``request.POST`` would read an upload before the registry does. Sites with such subscribers
mount the registry at the WSGI level instead::

    app = RegistryMiddleware(config.make_wsgi_app(), registry_from_settings(settings))
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from pyramid.config import Configurator
from pyramid.path import DottedNameResolver
from pyramid.registry import Registry as ComponentRegistry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.tweens import INGRESS

from ..auth.base import Auth
from ..middleware import REGISTRY_PREFIX, WSGIApp, is_registry_path, mounted_environ
from . import ConfigurationError, build_registry

__all__ = ["includeme", "registry_tween_factory", "registry_from_settings", "PassThroughResponse"]

SETTINGS_PREFIX = "docker_registry."
TWEEN = "docker_registry_wsgi.contrib.pyramid.registry_tween_factory"
Handler = Callable[[Request], Response]


def includeme(config: Configurator) -> None:
    """Mount the registry configured by the ``docker_registry.*`` settings at ``/v2``."""
    config.add_tween(TWEEN, under=INGRESS)


def registry_from_settings(settings: Mapping[str, Any]) -> WSGIApp:
    """The registry described by the ``docker_registry.*`` entries of ``settings``."""
    return build_registry(
        root=settings.get(SETTINGS_PREFIX + "root"),
        auth=_auth_from_settings(settings),
        max_manifest_size=settings.get(SETTINGS_PREFIX + "max_manifest_size"),
        root_setting=SETTINGS_PREFIX + "root",
    )


def _auth_from_settings(settings: Mapping[str, Any]) -> Auth | None:
    value = settings.get(SETTINGS_PREFIX + "auth")
    if value in (None, ""):
        return None
    if isinstance(value, str):
        value = DottedNameResolver().resolve(value.strip())
    if isinstance(value, type) or not isinstance(value, Auth):
        if not callable(value):
            raise ConfigurationError(f"{SETTINGS_PREFIX}auth: neither an auth hook nor a factory: {value!r}")
        value = value(settings)
    return value


class PassThroughResponse(Response):
    """The registry's response exactly as it made it.

    A plain WebOb response would, when called, rewrite ``Location`` into an absolute URL built
    from the request's host and scheme (wrong behind a TLS-terminating proxy) and handle
    conditional requests again; the registry has done both its own way.
    """

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(self.status, self.headerlist)
        return self.app_iter


def registry_tween_factory(handler: Handler, registry: ComponentRegistry) -> Handler:
    """The tween ``includeme`` adds: registry paths to the registry, the rest to ``handler``."""
    container_registry = registry_from_settings(registry.settings or {})

    def registry_tween(request: Request) -> Response:
        if not is_registry_path(request.environ.get("PATH_INFO", "")):
            return handler(request)
        status, headers, body = _call_streaming(
            container_registry, mounted_environ(request.environ, REGISTRY_PREFIX)
        )
        return PassThroughResponse(status=status, headerlist=headers, app_iter=body)

    return registry_tween


def _call_streaming(app: WSGIApp, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], Iterable[bytes]]:
    """Call a WSGI app and return its status, headers and body iterable, without buffering.

    WebOb's ``call_application`` reads the whole body into memory when the app starts its
    response lazily; here at most the first chunk is pulled to obtain the status.
    """
    captured: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None and captured:
            raise exc_info[1].with_traceback(exc_info[2])
        captured[:] = [status, headers]
        return _no_write

    body = app(environ, start_response)
    if captured:
        return captured[0], captured[1], body
    iterator = iter(body)
    try:
        first = next(iterator)
    except StopIteration:
        first = b""
    except BaseException:
        _close(body)
        raise
    if not captured:
        _close(body)
        raise RuntimeError("the registry returned without calling start_response")
    return captured[0], captured[1], _Chained(first, iterator, body)


def _no_write(data: bytes) -> None:
    raise RuntimeError("the registry used the WSGI write() callable, which this tween does not support")


def _close(body: Iterable[bytes]) -> None:
    close = getattr(body, "close", None)
    if close is not None:
        close()


class _Chained:
    """``first`` then the rest of ``iterator``; ``close`` closes the app's original iterable."""

    def __init__(self, first: bytes, iterator: Iterator[bytes], body: Iterable[bytes]) -> None:
        self._first: bytes | None = first
        self._iterator = iterator
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                yield first
        yield from self._iterator

    def close(self) -> None:
        _close(self._body)
