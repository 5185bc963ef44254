"""A Flask extension: the registry at ``/v2/`` of a Flask site, configured from ``app.config``.

::

    registry = DockerRegistry()          # in extensions.py

    def create_app():
        app = Flask(__name__)
        app.config["DOCKER_REGISTRY_ROOT"] = "/srv/registry"
        registry.init_app(app, auth=BasicAuth(check_password, policy=SitePolicy()))
        return app

``init_app`` wraps ``app.wsgi_app`` in :class:`~docker_registry_wsgi.middleware.RegistryMiddleware`,
so registry requests never enter Flask: no ``before_request`` hook, session or error handler of
the site runs for them, and nothing reads their bodies before the registry does. Because of
that, the auth hook would run outside any Flask context; the extension pushes an application
context around it, so a password check may use ``current_app`` and app-bound database sessions.

Configuration keys (``app.config``):

``DOCKER_REGISTRY_ROOT``
    Folder of the filesystem storage (required unless a ``storage`` is passed).
``DOCKER_REGISTRY_AUTH``
    The auth hook: an object with ``authorize(request, needed)``, or an import string
    (``"mysite.registry:auth"``) naming one or naming a factory ``make_auth(app.config)``.
    Overridden by ``init_app(app, auth=...)``.
    Unset means no authentication (:class:`~docker_registry_wsgi.auth.AllowAll`).
``DOCKER_REGISTRY_MAX_MANIFEST_SIZE``
    Largest manifest accepted, in bytes or as ``"4MiB"`` (default: the registry's own).

Signals (blinker, like Flask's own): after each push, pull, delete and mount the registry
sends :data:`registry_push`, :data:`registry_pull`, :data:`registry_delete` or
:data:`registry_mount` with the app as sender and the :class:`~docker_registry_wsgi.events.Event`
as ``event``, inside an application context::

    from docker_registry_wsgi.contrib.flask import registry_push

    @registry_push.connect_via(app)
    def pushed(sender, event, **extra):
        if event.kind == "manifest" and event.tag:
            db.session.add(Build(repository=event.repository, tag=event.tag, digest=event.digest))
            db.session.commit()

A receiver's exception is logged and never fails the registry's request; with no receivers,
requests build no events.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from blinker import Namespace
from werkzeug.utils import import_string

from ..auth.base import Access, Auth
from ..events import DELETE, MOUNT, PULL, PUSH, Event
from ..middleware import RegistryMiddleware
from . import build_registry

if TYPE_CHECKING:
    from flask import Flask
    from werkzeug.wrappers import Request

    from ..app import Registry
    from ..storage.base import Storage

__all__ = ["DockerRegistry", "AppContextAuth", "EXTENSION_NAME", "registry_push", "registry_pull",
           "registry_delete", "registry_mount"]

#: The key of the registry in ``app.extensions``.
EXTENSION_NAME = "docker_registry"

# Signals are declarations, like Flask's own in flask.signals: one set for every app.
_signals = Namespace()
#: Sent after a blob or manifest push (``event.kind``; a tag push is a manifest push with ``event.tag``).
registry_push = _signals.signal("docker-registry-push")
#: Sent after a manifest or blob GET.
registry_pull = _signals.signal("docker-registry-pull")
#: Sent after a delete of a manifest, a tag or a blob.
registry_delete = _signals.signal("docker-registry-delete")
#: Sent after a blob mount.
registry_mount = _signals.signal("docker-registry-mount")
_SIGNALS = {PUSH: registry_push, PULL: registry_pull, DELETE: registry_delete, MOUNT: registry_mount}


class AppContextAuth:
    """Run another auth hook inside the Flask app's application context.

    Registry requests bypass Flask, so without this ``current_app``, ``g`` and extensions bound
    to the app context (Flask-SQLAlchemy's ``db.session``) are unusable in a password check.
    """

    def __init__(self, app: Flask, auth: Auth) -> None:
        self.app = app
        self.auth = auth

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        with self.app.app_context():
            return self.auth.authorize(request, needed)


class DockerRegistry:
    """The extension object; ``init_app`` may be called for several apps.

    ``auth`` and ``storage`` given here are the defaults for every ``init_app`` call; the
    registry built for an app is kept in ``app.extensions["docker_registry"]``, not on this
    object.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        auth: Auth | None = None,
        storage: Storage | None = None,
    ) -> None:
        self.auth = auth
        self.storage = storage
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        auth: Auth | None = None,
        storage: Storage | None = None,
    ) -> Registry:
        """Build the registry from ``app.config`` and mount it at ``/v2`` of ``app``."""
        if EXTENSION_NAME in app.extensions:
            raise RuntimeError(f"the registry is already mounted in {app.name!r}")
        hook = auth or self.auth or _configured_auth(app.config.get("DOCKER_REGISTRY_AUTH"), app.config)
        registry = build_registry(
            root=app.config.get("DOCKER_REGISTRY_ROOT"),
            storage=storage or self.storage,
            auth=AppContextAuth(app, hook) if hook is not None else None,
            max_manifest_size=app.config.get("DOCKER_REGISTRY_MAX_MANIFEST_SIZE"),
            root_setting="DOCKER_REGISTRY_ROOT",
        )
        app.wsgi_app = RegistryMiddleware(app.wsgi_app, registry)  # type: ignore[method-assign]
        app.extensions[EXTENSION_NAME] = registry
        for action, signal in _SIGNALS.items():
            sender = _SignalSender(app, signal)
            registry.events.subscribe(sender, actions=[action], active=sender.active)
        return registry

    @staticmethod
    def registry(app: Flask) -> Registry:
        """The registry mounted in ``app`` (``KeyError`` if ``init_app`` was not called)."""
        registry: Registry = app.extensions[EXTENSION_NAME]
        return registry


class _SignalSender:
    """Send one signal for an app's registry events, in the app's application context."""

    def __init__(self, app: Flask, signal: Any) -> None:
        self.app = app
        self.signal = signal

    def active(self) -> bool:
        return bool(self.signal.receivers)

    def __call__(self, event: Event) -> None:
        with self.app.app_context():
            self.signal.send(self.app, event=event)


def _configured_auth(value: Any, config: Mapping[str, Any]) -> Auth | None:
    """``DOCKER_REGISTRY_AUTH`` as an auth hook: the object, the one named, or what a factory makes."""
    if isinstance(value, str):
        value = import_string(value)
        if isinstance(value, type) or not isinstance(value, Auth):
            value = value(config)
    auth: Auth | None = value
    return auth
