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

and call ``forward_events(container_registry, config.registry)`` to keep the events below.

Events: after each push, pull, delete and mount the registry notifies
:class:`RegistryPush`, :class:`RegistryPull`, :class:`RegistryDelete` or :class:`RegistryMount`
(all :class:`RegistryEvent`) through ``config.registry.notify``, so subscribers are added the
Pyramid way::

    from docker_registry_wsgi.contrib.pyramid import RegistryPush

    @subscriber(RegistryPush)          # or config.add_subscriber(pushed, RegistryPush)
    def pushed(event):
        if event.kind == "manifest" and event.tag:
            event.request.dbsession.add(Build(event.repository, event.tag, event.digest))

``event.event`` is the :class:`~docker_registry_wsgi.events.Event` (its fields are also
attributes of the Pyramid event) and ``event.request`` the site's request. A subscriber's
exception is logged and never fails the registry's request; with no subscriber for registry
events, requests build none.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from pyramid.config import Configurator
from pyramid.path import DottedNameResolver
from pyramid.registry import Registry as ComponentRegistry
from pyramid.request import Request
from pyramid.response import Response
from pyramid.threadlocal import get_current_request
from pyramid.tweens import INGRESS
from zope.interface import implementedBy

from ..app import Registry
from ..auth.base import Auth
from ..events import DELETE, MOUNT, PULL, PUSH, Event
from ..middleware import REGISTRY_PREFIX, WSGIApp, is_registry_path, mounted_environ
from . import ConfigurationError, build_registry

__all__ = ["includeme", "registry_tween_factory", "registry_from_settings", "PassThroughResponse",
           "forward_events", "RegistryEvent", "RegistryPush", "RegistryPull", "RegistryDelete",
           "RegistryMount"]

SETTINGS_PREFIX = "docker_registry."
TWEEN = "docker_registry_wsgi.contrib.pyramid.registry_tween_factory"
Handler = Callable[[Request], Response]


def includeme(config: Configurator) -> None:
    """Mount the registry configured by the ``docker_registry.*`` settings at ``/v2``."""
    config.add_tween(TWEEN, under=INGRESS)


def registry_from_settings(settings: Mapping[str, Any]) -> Registry:
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


class RegistryEvent:
    """A registry event as a Pyramid event: :attr:`event`, its fields, and the site's request."""

    def __init__(self, event: Event, request: Request | None) -> None:
        self.event = event
        self.request = request

    def __getattr__(self, name: str) -> Any:
        if name == "event":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.event, name)


class RegistryPush(RegistryEvent):
    """After a blob or manifest push (a tag push is a manifest push with ``tag``)."""


class RegistryPull(RegistryEvent):
    """After a manifest or blob GET."""


class RegistryDelete(RegistryEvent):
    """After a delete of a manifest, a tag or a blob."""


class RegistryMount(RegistryEvent):
    """After a blob mount."""


_EVENT_CLASSES: dict[str, type[RegistryEvent]] = {
    PUSH: RegistryPush, PULL: RegistryPull, DELETE: RegistryDelete, MOUNT: RegistryMount,
}


def forward_events(container_registry: Registry, registry: ComponentRegistry) -> None:
    """Notify ``registry`` (Pyramid's ``config.registry``) of the container registry's events."""
    for action, cls in _EVENT_CLASSES.items():
        def notify(event: Event, cls: type[RegistryEvent] = cls) -> None:
            registry.notify(cls(event, get_current_request()))

        def active(cls: type[RegistryEvent] = cls) -> bool:
            return bool(registry.adapters.subscriptions([implementedBy(cls)], None))

        container_registry.events.subscribe(notify, actions=[action], active=active)


class PassThroughResponse(Response):  # type: ignore[misc]  # pyramid ships no types
    """The registry's response exactly as it made it.

    A plain WebOb response would, when called, rewrite ``Location`` into an absolute URL built
    from the request's host and scheme (wrong behind a TLS-terminating proxy) and handle
    conditional requests again; the registry has done both its own way.
    """

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(self.status, self.headerlist)
        app_iter: Iterable[bytes] = self.app_iter
        return app_iter


def registry_tween_factory(handler: Handler, registry: ComponentRegistry) -> Handler:
    """The tween ``includeme`` adds: registry paths to the registry, the rest to ``handler``."""
    container_registry = registry_from_settings(registry.settings or {})
    forward_events(container_registry, registry)

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
