"""Django integration: wrap the project's WSGI application, log in with Django users.

In ``wsgi.py``::

    from django.core.wsgi import get_wsgi_application
    from docker_registry_wsgi.contrib.django import with_registry

    application = with_registry(get_wsgi_application())

In ``settings.py``::

    DOCKER_REGISTRY = {
        "ROOT": BASE_DIR / "registry-data",          # required: the storage folder
        "PERMISSIONS": {                              # action -> Django permission
            "pull": "hub.pull_image",
            "push": "hub.push_image",
            "delete": "hub.delete_image",
        },
        "GROUPS": {"pull": ["readers"]},              # action -> groups granting it
        "ANONYMOUS_PULL": False,
        "REALM": "my site",
        "MAX_MANIFEST_SIZE": "4MiB",
        "CREDENTIAL_CACHE_SECONDS": 60,              # 0: check every request's password
    }

``docker login`` takes a Django username and password, checked by
:func:`django.contrib.auth.authenticate` (so every configured authentication backend applies,
and inactive users are refused). Clients send the password with every request and Django's
hashers are slow on purpose (about 2 s a check on a small machine), so a successful check is
remembered for ``CREDENTIAL_CACHE_SECONDS`` (see :mod:`docker_registry_wsgi.auth.credentials`); a password change, a
deactivation or a permission change reaches a cached login when its entry expires. A user may do what a permission (``user.has_perm``, which
covers permissions given through groups, and superusers) or a group membership grants;
without ``PERMISSIONS`` and ``GROUPS`` only superusers may use the registry. ``POLICY`` (an
import string of an :class:`~docker_registry_wsgi.auth.AccessPolicy` class, instantiated with
no arguments) replaces this policy, and ``AUTH`` (an import string of a factory
``make_auth(settings_dict) -> Auth``) the whole hook.

Registry requests bypass Django entirely (no middleware, no ``ALLOWED_HOSTS`` check, no
request signals); the auth hook closes stale database connections itself, as Django's request
signals would.

Signals: after each push, pull, delete and mount the registry sends :data:`registry_push`,
:data:`registry_pull`, :data:`registry_delete` or :data:`registry_mount` (``django.dispatch``
signals) with the registry as ``sender`` and the :class:`~docker_registry_wsgi.events.Event` as
``event``::

    from django.dispatch import receiver
    from docker_registry_wsgi.contrib.django import registry_push

    @receiver(registry_push)
    def pushed(sender, event, **kwargs):
        if event.kind == "manifest" and event.tag:
            Build.objects.create(repository=event.repository, tag=event.tag, digest=event.digest)

Receivers run with ``send_robust``: an exception is logged (logger ``django.dispatch``) and
never fails the registry's request. Stale database connections are closed before and after,
as for the auth hook. With no receivers, requests build no events.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from django.conf import settings as django_settings
from django.contrib.auth import authenticate
from django.db import close_old_connections
from django.dispatch import Signal
from django.utils.module_loading import import_string

from ..app import Registry
from ..auth.base import DELETE, PULL, PUSH, Access, AccessPolicy, Auth
from ..auth.basic import BasicAuth
from ..events import MOUNT, Event
from ..middleware import RegistryMiddleware, WSGIApp
from . import ConfigurationError, build_registry
from ..auth.credentials import CachedPasswordCheck

__all__ = ["with_registry", "registry_from_settings", "DjangoUserPolicy", "django_auth", "check_password",
           "registry_push", "registry_pull", "registry_delete", "registry_mount"]

SETTING = "DOCKER_REGISTRY"
_ACTIONS = (PULL, PUSH, DELETE)

# Signals are declarations, like Django's own (django.core.signals): one set for every site.
#: Sent after a blob or manifest push (``event.kind``; a tag push is a manifest push with ``event.tag``).
registry_push = Signal()
#: Sent after a manifest or blob GET.
registry_pull = Signal()
#: Sent after a delete of a manifest, a tag or a blob.
registry_delete = Signal()
#: Sent after a blob mount.
registry_mount = Signal()
_SIGNALS = {PUSH: registry_push, PULL: registry_pull, DELETE: registry_delete, MOUNT: registry_mount}


def with_registry(application: WSGIApp, config: Mapping[str, Any] | None = None) -> RegistryMiddleware:
    """``application`` with the registry of ``settings.DOCKER_REGISTRY`` (or ``config``) at ``/v2``.

    Call it after ``get_wsgi_application()``, which loads the settings and apps.
    """
    return RegistryMiddleware(application, registry_from_settings(config))


def registry_from_settings(config: Mapping[str, Any] | None = None) -> Registry:
    """The registry described by ``config``, by default ``settings.DOCKER_REGISTRY``; it sends
    this module's signals."""
    if config is None:
        config = getattr(django_settings, SETTING, None)
        if config is None:
            raise ConfigurationError(f"settings.{SETTING} is not set")
    if "AUTH" in config:
        auth = import_string(config["AUTH"])(config)
    else:
        auth = django_auth(config)
    registry = build_registry(
        root=config.get("ROOT"),
        auth=auth,
        max_manifest_size=config.get("MAX_MANIFEST_SIZE"),
        root_setting=f"{SETTING}['ROOT']",
    )
    for action, signal in _SIGNALS.items():
        sender = _SignalSender(registry, signal)
        registry.events.subscribe(sender, actions=[action], active=sender.active)
    return registry


class _SignalSender:
    """Send one signal for a registry's events, between ``close_old_connections`` calls."""

    def __init__(self, registry: Registry, signal: Signal) -> None:
        self.registry = registry
        self.signal = signal

    def active(self) -> bool:
        return bool(self.signal.has_listeners(self.registry))

    def __call__(self, event: Event) -> None:
        close_old_connections()
        try:
            self.signal.send_robust(sender=self.registry, event=event)
        finally:
            close_old_connections()


def django_auth(config: Mapping[str, Any]) -> Auth:
    """HTTP Basic against Django's users, with :class:`DjangoUserPolicy` or ``POLICY``."""
    if "POLICY" in config:
        policy: AccessPolicy = import_string(config["POLICY"])()
    else:
        policy = DjangoUserPolicy(
            permissions=config.get("PERMISSIONS", {}),
            groups=config.get("GROUPS", {}),
            anonymous_pull=bool(config.get("ANONYMOUS_PULL", False)),
        )
    verify: Any = check_password
    ttl = float(config.get("CREDENTIAL_CACHE_SECONDS", 60))
    if ttl > 0:
        verify = CachedPasswordCheck(check_password, ttl=ttl)
    return BasicAuth(verify, policy=_ConnectionHygiene(policy), realm=config.get("REALM", "docker-registry-wsgi"))


def check_password(username: str, password: str) -> Any:
    """The active Django user with these credentials, or ``None``.

    ``authenticate`` gets no request: registry requests never become Django ``HttpRequest``s,
    so backends that need one (rate limiters, django-axes) do not apply here.
    """
    close_old_connections()
    try:
        return authenticate(None, username=username, password=password)
    finally:
        close_old_connections()


class DjangoUserPolicy:
    """Grant each action by Django permission or group membership; see the module docstring."""

    def __init__(
        self,
        permissions: Mapping[str, str] | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
        *,
        anonymous_pull: bool = False,
    ) -> None:
        permissions = dict(permissions or {})
        groups = {action: frozenset(names) for action, names in (groups or {}).items()}
        unknown = (set(permissions) | set(groups)) - set(_ACTIONS)
        if unknown:
            raise ConfigurationError(f"{SETTING}: unknown actions {sorted(unknown)}; use {list(_ACTIONS)}")
        self.permissions = permissions
        self.groups = groups
        self.anonymous_pull = anonymous_pull

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        if identity is None:
            if self.anonymous_pull and access.type == "repository":
                return access.actions & {PULL}
            return frozenset()
        user: Any = identity
        if not user.is_active:
            return frozenset()
        if user.is_superuser:
            return access.actions
        if access.type != "repository":
            return frozenset()  # the catalog: superusers only
        member_of = set(user.groups.values_list("name", flat=True)) if self.groups else set()
        return frozenset(
            action
            for action in access.actions
            if (action in self.permissions and user.has_perm(self.permissions[action]))
            or not member_of.isdisjoint(self.groups.get(action, ()))
        )


class _ConnectionHygiene:
    """Run a policy's database queries between ``close_old_connections`` calls."""

    def __init__(self, policy: AccessPolicy) -> None:
        self.policy = policy

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        close_old_connections()
        try:
            return self.policy.granted(identity, access)
        finally:
            close_old_connections()
