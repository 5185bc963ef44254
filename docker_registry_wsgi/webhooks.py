"""Webhooks: each event is written to the storage before its request answers, then POSTed later.

Delivery is *at least once*. The request only writes the event to an outbox in the registry's
own storage (one ``write`` per event, and only for events some endpoint wants), so a slow or
dead endpoint never slows a push. A :class:`Dispatcher` (a background thread in any registry
process) copies each outbox event into a queue per endpoint whose filters match, then POSTs
each queue in order, deleting an event once its endpoint accepted it (any 2xx or 3xx, as
distribution counts). A failed POST is retried with exponential backoff per endpoint; events
older than the endpoint's retention are dropped with a log line. Keys, below ``events/``::

    events/outbox/<microseconds since epoch>-<event id>           written by requests
    events/queue/<endpoint name>/<microseconds>-<event id>        one queue per endpoint
    events/lease                                                 which dispatcher delivers

Several processes may each run a dispatcher over one storage: they share one lease, taken and
renewed with :meth:`~.storage.Storage.swap`, and only its holder delivers. An event is sent
twice only when a dispatcher dies (or loses its lease) between a POST and the delete that
records it; receivers deduplicate by the event's ``id``. Whatever is in the storage when a
registry stops is sent after it starts again.

Bodies are distribution's notification envelope (``notifications/event.go``; media type
:data:`DISTRIBUTION_MEDIA_TYPE`, one event per envelope as distribution sends them) or a
structured CloudEvent (:data:`CLOUDEVENTS_MEDIA_TYPE`, specversion 1.0) whose ``data`` is that
same event. With a ``secret``, :data:`SIGNATURE_HEADER` carries ``sha256=`` and the hex
HMAC-SHA256 of the body with the secret as key (see :func:`signature`).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import itertools
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from fnmatch import translate
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from urllib.parse import urlsplit

from .version import __version__
from .events import ACTIONS, Event, microseconds, parse_actions
from .retention import _REPOSITORY_CHARACTERS, RetentionError, _check_glob, format_duration, parse_duration
from .leases import Lease
from .options import ConfigurationError, Option, choice, duration, tables, text, url
from .storage.base import KeyNotFound, Storage, StorageError, VersionConflict

if TYPE_CHECKING:
    from .app import Registry

__all__ = [
    "Endpoint",
    "WebhookConfig",
    "WebhookConfigError",
    "Outbox",
    "Dispatcher",
    "DispatchReport",
    "OPTIONS",
    "build",
    "install",
    "signature",
    "DISTRIBUTION_MEDIA_TYPE",
    "CLOUDEVENTS_MEDIA_TYPE",
    "SIGNATURE_HEADER",
    "FORMATS",
]

#: distribution 2.x's envelope type (3.x sends ``...events.v2+json`` for the same fields).
DISTRIBUTION_MEDIA_TYPE = "application/vnd.docker.distribution.events.v1+json"
#: CloudEvents 1.0, structured content mode, JSON event format.
CLOUDEVENTS_MEDIA_TYPE = "application/cloudevents+json"
#: ``sha256=<hex HMAC-SHA256 of the body, keyed with the endpoint's secret>``.
SIGNATURE_HEADER = "X-Registry-Signature-256"
FORMATS = ("distribution", "cloudevents")
#: The CloudEvents ``type`` is this, the kind and the action: ``docker-registry-wsgi.manifest.push``.
CLOUDEVENTS_TYPE_PREFIX = "docker-registry-wsgi"

DEFAULT_RETENTION = 86400.0
DEFAULT_TIMEOUT = 5.0
DEFAULT_BACKOFF = 1.0
DEFAULT_MAX_BACKOFF = 300.0
DEFAULT_PREFIX = "events/"
DEFAULT_LEASE = 30.0
#: How many events one dispatcher step moves or sends per endpoint before it looks again.
BATCH = 100

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_ENDPOINT_KEYS = ("url", "name", "headers", "secret", "actions", "repositories", "format",
                  "timeout", "retention", "backoff", "max_backoff")
_RESPONSE_READ = 65536


class WebhookConfigError(ConfigurationError):
    """A webhook endpoint that cannot be used; the message names the entry and the key."""


def signature(secret: str, body: bytes) -> str:
    """The :data:`SIGNATURE_HEADER` value for ``body``: ``sha256=`` and the hex HMAC-SHA256.

    A receiver recomputes it over the raw body it got and compares with
    :func:`hmac.compare_digest`.
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _duration(value: object, key: str, where: str, *, positive: bool = False) -> float:
    try:
        seconds = parse_duration(value)
    except RetentionError as exc:
        raise WebhookConfigError(f"{where}: {key}: {exc}") from None
    if positive and seconds <= 0:
        raise WebhookConfigError(f"{where}: {key} must be more than 0, not {value!r}")
    return seconds


@dataclass(frozen=True)
class Endpoint:
    """Where to POST events, in which format, and which events (by action and repository glob).

    ``repositories`` are shell globs as in the access rules (``*`` also crosses ``/``); none
    means every repository. Durations are seconds. ``name`` names the endpoint's queue in the
    storage (default: derived from the URL); give one if the URL may change while events wait.
    """

    url: str
    name: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    secret: str | None = None
    actions: frozenset[str] = frozenset(ACTIONS)
    repositories: tuple[str, ...] = ()
    format: str = "distribution"
    timeout: float = DEFAULT_TIMEOUT
    retention: float = DEFAULT_RETENTION
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    _globs: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"webhook {self.url!r}"
        parts = urlsplit(self.url) if isinstance(self.url, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or (
            not all(33 <= ord(c) < 127 for c in self.url)
        ):
            raise WebhookConfigError(f"{where}: url must be an http:// or https:// URL "
                                     "(ASCII, non-ASCII characters percent-encoded)")
        if not self.name:
            object.__setattr__(self, "name", "url-" + hashlib.sha256(self.url.encode()).hexdigest()[:16])
        elif not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise WebhookConfigError(f"{where}: name must be 1-64 of A-Z a-z 0-9 . _ - (starting "
                                     f"with a letter or digit), not {self.name!r}")
        for header, value in self.headers.items():
            if not isinstance(header, str) or not _HEADER_NAME.fullmatch(header):
                raise WebhookConfigError(f"{where}: headers: {header!r} is not a header name")
            if not isinstance(value, str) or any(c in value for c in "\r\n\0") or not _latin1(value):
                raise WebhookConfigError(f"{where}: headers: {header} must be one line of text "
                                         "(Latin-1, as HTTP headers are)")
            if header.lower() == SIGNATURE_HEADER.lower():
                raise WebhookConfigError(f"{where}: headers: {header} is set from the secret")
        if self.secret is not None and (not isinstance(self.secret, str) or not self.secret):
            raise WebhookConfigError(f"{where}: secret must be a non-empty string")
        if self.format not in FORMATS:
            raise WebhookConfigError(f"{where}: format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        try:
            object.__setattr__(self, "actions", parse_actions(self.actions))
        except ValueError as exc:
            raise WebhookConfigError(f"{where}: actions: {exc}") from None
        if not self.actions:
            raise WebhookConfigError(f"{where}: actions: name at least one action")
        if isinstance(self.repositories, str):
            raise WebhookConfigError(f"{where}: repositories: expected a list of globs")
        try:
            globs = tuple(_check_glob(p, _REPOSITORY_CHARACTERS, "repository name") for p in self.repositories)
        except RetentionError as exc:
            raise WebhookConfigError(f"{where}: repositories: {exc}") from None
        object.__setattr__(self, "repositories", globs)
        object.__setattr__(self, "_globs", tuple(re.compile(translate(p)) for p in globs))
        for key in ("timeout", "retention", "backoff", "max_backoff"):
            object.__setattr__(self, key, _duration(getattr(self, key), key, where, positive=True))

    @classmethod
    def from_mapping(cls, entry: Mapping[str, Any], *, where: str = "webhook",
                     defaults: Mapping[str, Any] | None = None) -> "Endpoint":
        """An endpoint from a config file's ``[[webhooks]]`` table (keys as the attributes).

        ``defaults`` fills keys the entry leaves out. :class:`WebhookConfigError` names ``where``.
        """
        if not isinstance(entry, Mapping):
            raise WebhookConfigError(f"{where}: expected a table of settings, not {entry!r}")
        unknown = sorted(str(k) for k in entry if k not in _ENDPOINT_KEYS)
        if unknown:
            raise WebhookConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                                     f"known: {', '.join(_ENDPOINT_KEYS)}")
        if "url" not in entry:
            raise WebhookConfigError(f"{where}: url is required")
        values = {**{k: v for k, v in (defaults or {}).items() if k in _ENDPOINT_KEYS}, **entry}
        headers = values.get("headers", {})
        if not isinstance(headers, Mapping):
            raise WebhookConfigError(f"{where}: headers: expected a table of header names and values")
        repositories = values.get("repositories", ())
        if not isinstance(repositories, (list, tuple)):
            raise WebhookConfigError(f"{where}: repositories: expected a list of globs")
        try:
            return cls(
                url=values["url"],
                name=values.get("name") or "",
                headers=dict(headers),
                secret=values.get("secret"),
                actions=values.get("actions", ACTIONS),
                repositories=tuple(repositories),
                format=values.get("format", "distribution"),
                timeout=values.get("timeout", DEFAULT_TIMEOUT),
                retention=values.get("retention", DEFAULT_RETENTION),
                backoff=values.get("backoff", DEFAULT_BACKOFF),
                max_backoff=values.get("max_backoff", DEFAULT_MAX_BACKOFF),
            )
        except WebhookConfigError as exc:
            raise WebhookConfigError(f"{where}: {exc}") from None

    def matches(self, event: Event) -> bool:
        """Whether the endpoint wants ``event`` (its action, and its repository if globs are set)."""
        if event.action not in self.actions:
            return False
        return not self._globs or any(g.match(event.repository) for g in self._globs)

    def render(self, event: Event) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST that delivers ``event``."""
        if self.format == "cloudevents":
            body = json.dumps(_cloudevent(event)).encode()
            content_type = CLOUDEVENTS_MEDIA_TYPE
        else:
            body = json.dumps({"events": [event.to_distribution()]}).encode()
            content_type = DISTRIBUTION_MEDIA_TYPE
        headers = {"Content-Type": content_type, "User-Agent": f"docker-registry-wsgi/{__version__}"}
        headers.update(self.headers)
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        return body, headers


def _cloudevent(event: Event) -> dict[str, Any]:
    """``event`` as a structured-mode CloudEvent (CloudEvents 1.0, JSON format)."""
    if event.digest:
        subject = f"{event.repository}:{event.tag}@{event.digest}" if event.tag else f"{event.repository}@{event.digest}"
    else:
        subject = f"{event.repository}:{event.tag}" if event.tag else event.repository
    host = event.request.host
    distribution = event.to_distribution()
    return {
        "specversion": "1.0",
        "id": event.id,
        "source": f"//{host}/v2/{event.repository}" if host else f"/v2/{event.repository}",
        "type": f"{CLOUDEVENTS_TYPE_PREFIX}.{event.kind}.{event.action}",
        "time": distribution["timestamp"],
        "subject": subject,
        "datacontenttype": "application/json",
        "data": distribution,
    }


@dataclass(frozen=True)
class WebhookConfig:
    """The endpoints events go to, and where in the storage they wait (``prefix``)."""

    endpoints: tuple[Endpoint, ...]
    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for endpoint in self.endpoints:
            if endpoint.name in seen:
                raise WebhookConfigError(
                    f"two webhooks share the name {endpoint.name!r} (the same url without names?): "
                    "give each a name of its own")
            seen.add(endpoint.name)

    @property
    def actions(self) -> frozenset[str]:
        """The actions some endpoint wants: requests record no others."""
        return frozenset().union(*(e.actions for e in self.endpoints))

    def wants(self, event: Event) -> bool:
        return any(endpoint.matches(event) for endpoint in self.endpoints)

    @classmethod
    def from_mappings(cls, entries: Iterable[Mapping[str, Any]],
                      defaults: Mapping[str, Any] | None = None) -> "WebhookConfig":
        """The config of a config file's ``webhooks`` list (``[[webhooks]]`` tables in TOML)."""
        if not isinstance(entries, (list, tuple)):
            raise WebhookConfigError("webhooks: expected a list of tables ([[webhooks]] in TOML)")
        return cls(tuple(Endpoint.from_mapping(entry, where=f"webhooks[{i}]", defaults=defaults)
                         for i, entry in enumerate(entries)))


# -- the standalone server's options ---------------------------------------------------------


def _actions(text: str) -> list[str]:
    """``--webhook-actions``: comma- or space-separated action names, each one known."""
    actions = [a.strip() for a in text.replace(",", " ").split()]
    found = parse_actions(actions)
    if not found:
        raise ValueError("name at least one action")
    return actions


def _entries(entries: list[Any]) -> list[Mapping[str, Any]]:
    """A configuration file's ``[[webhooks]]`` tables, each checked as :func:`build` will use it."""
    WebhookConfig.from_mappings(entries)
    return entries


_GROUP = "webhooks"

OPTIONS = (
    Option("webhook-url", url(), "POST an event for each push, pull, delete and mount to URL",
           dest="webhook_urls", env="REGISTRY_WEBHOOK_URLS", repeatable=True, default=(), group=_GROUP),
    Option("webhook-secret", text(metavar="SECRET"), "sign bodies to --webhook-url endpoints with "
           f"this HMAC key (header {SIGNATURE_HEADER}); prefer the variable or the file",
           secret=True, group=_GROUP),
    Option("webhook-format", choice(*FORMATS), "body of --webhook-url POSTs: distribution's "
           "notification envelope or a CloudEvent", default="distribution", group=_GROUP),
    Option("webhook-actions", text(_actions, "comma-separated actions", "ACTIONS"),
           "the actions --webhook-url endpoints get", default=list(ACTIONS), group=_GROUP,
           default_text=",".join(ACTIONS)),
    Option("webhook-retention", duration(positive=True), "drop (and log) events not delivered "
           "within this long, e.g. 36h or 7d; the default of every endpoint",
           default=DEFAULT_RETENTION, default_text=format_duration(DEFAULT_RETENTION), group=_GROUP),
    Option("webhooks", tables(_entries), "endpoints with their own headers, secret, format and "
           "filters by action and repository glob: [[webhooks]] tables with the keys "
           + ", ".join(_ENDPOINT_KEYS) + " (docs/events.rst)", flag=False, env=False, default=(),
           group=_GROUP, default_text="none"),
)


def build(namespace: argparse.Namespace, entries: Iterable[Mapping[str, Any]] | None = None) -> WebhookConfig | None:
    """The webhooks of the options and of the configuration file's ``webhooks`` entries (from
    ``namespace.webhooks`` unless ``entries`` are given); ``None`` if there are none.

    :class:`WebhookConfigError` (a ``ValueError``) names the option or entry that is wrong.
    """
    retention = namespace.webhook_retention
    if entries is None:
        entries = getattr(namespace, "webhooks", None) or []
    config = WebhookConfig.from_mappings(list(entries), defaults={"retention": retention})
    command_line = tuple(
        Endpoint.from_mapping(
            {"url": url, "secret": namespace.webhook_secret or None, "format": namespace.webhook_format,
             "actions": list(namespace.webhook_actions), "retention": retention},
            where=f"--webhook-url {url}",
        )
        for url in namespace.webhook_urls
    )
    endpoints = config.endpoints + command_line
    return WebhookConfig(endpoints) if endpoints else None


# -- the outbox: what a request writes ---------------------------------------------------------


def _record(event: Event) -> bytes:
    return json.dumps({"v": 1, "event": event.to_dict()}).encode()


def _read_record(data: bytes) -> Event:
    """The event of an outbox or queue object; ``ValueError`` if it is not one."""
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise ValueError("not an event record of version 1")
        return Event.from_dict(doc["event"])
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"malformed event record: {exc!r}") from None


def event_key(event: Event) -> str:
    """``<microseconds since epoch, 16 digits>-<id>``: keys list in the order events happened."""
    return f"{microseconds(event.timestamp):016d}-{event.id}"


class Outbox:
    """The event subscriber that writes each wanted event to the storage (one write, no network).

    A write that fails is logged with the event, which is then lost: the request that caused it
    has already succeeded and is answered as usual.
    """

    def __init__(self, storage: Storage, config: WebhookConfig, *,
                 on_write: Callable[[], None] | None = None, logger: logging.Logger | None = None) -> None:
        self.storage = storage
        self.config = config
        self.on_write = on_write
        self.logger = logger or logging.getLogger("docker_registry_wsgi.webhooks")

    def __call__(self, event: Event) -> None:
        if not self.config.wants(event):
            return
        key = f"{self.config.prefix}outbox/{event_key(event)}"
        try:
            self.storage.write(key, _record(event), if_absent=True)
        except StorageError as exc:
            self.logger.error("webhook event %s (%s %s %s) lost: the outbox write failed: %s",
                              event.id, event.action, event.kind, event.repository, exc)
            return
        if self.on_write is not None:
            self.on_write()


# -- the dispatcher: what a background thread does --------------------------------------------


@dataclass
class DispatchReport:
    """What one :meth:`Dispatcher.run_once` did; ``leader`` is whether it held the lease."""

    leader: bool
    #: Events moved from the outbox into endpoint queues.
    queued: int = 0
    #: Per endpoint name: events delivered, and events dropped (too old, or unreadable).
    delivered: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    #: Per endpoint name that failed this step: the error.
    failed: dict[str, str] = field(default_factory=dict)


@dataclass
class _Backoff:
    """An endpoint's consecutive failures and when it may be tried again."""

    failures: int = 0
    next_attempt: float = 0.0

    def failed(self, now: float, endpoint: Endpoint) -> float:
        self.failures += 1
        delay = min(endpoint.max_backoff, endpoint.backoff * 2.0 ** min(self.failures - 1, 64))
        self.next_attempt = now + delay
        return delay

    def succeeded(self) -> None:
        self.failures, self.next_attempt = 0, 0.0


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A 3xx answer counts as delivered, as distribution counts it; it is not followed."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Dispatcher:
    """Moves events from the outbox into endpoint queues and POSTs them; see the module docstring.

    Tests drive it step by step with :meth:`run_once` and an injected ``clock``; a server calls
    :meth:`start` (a thread for the outbox, one per endpoint) and :meth:`stop`.

    :param poll_interval: seconds between looks at the outbox for events written by other
        processes (events of this process wake it at once).
    :param lease_ttl: seconds a dispatcher holds the delivery lease unless it renews it; another
        process takes over that long after a holder died. Default 30, or three times the longest
        endpoint timeout if that is more (it renews with two thirds left, so that a POST in
        flight always ends within the lease).
    """

    def __init__(
        self,
        storage: Storage,
        config: WebhookConfig,
        *,
        clock: Callable[[], float] = time.time,
        poll_interval: float = 1.0,
        lease_ttl: float | None = None,
        owner: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        self.storage = storage
        self.config = config
        self.clock = clock
        self.poll_interval = poll_interval
        self.logger = logger or logging.getLogger("docker_registry_wsgi.webhooks")
        longest = max((e.timeout for e in config.endpoints), default=DEFAULT_TIMEOUT)
        if lease_ttl is None:
            lease_ttl = max(DEFAULT_LEASE, 3 * longest)
        if lease_ttl < 3 * longest:
            raise ValueError(f"lease_ttl {lease_ttl:g} s must be at least three endpoint timeouts ({3 * longest:g} s)")
        owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._lease = Lease(storage, config.prefix + "lease", owner, lease_ttl)
        self._backoff = {e.name: _Backoff() for e in config.endpoints}
        self._opener = urllib.request.build_opener(_NoRedirects)
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._endpoint_wakes = {e.name: threading.Event() for e in config.endpoints}
        self._threads: list[threading.Thread] = []

    @property
    def owner(self) -> str:
        return self._lease.owner

    def queue_prefix(self, endpoint: Endpoint) -> str:
        return f"{self.config.prefix}queue/{endpoint.name}/"

    # -- one step, for tests and for the threads ------------------------------------------------

    def run_once(self) -> DispatchReport:
        """Take or renew the lease; if held, move the outbox into queues and try each due endpoint."""
        if not self._lease.hold(self.clock()):
            return DispatchReport(leader=False)
        report = DispatchReport(leader=True)
        report.queued = len(self.fan_out())
        for endpoint in self.config.endpoints:
            self._deliver(endpoint, report)
        return report

    def fan_out(self) -> list[str]:
        """Copy up to :data:`BATCH` outbox events into the queues of the endpoints they match.

        Returns the keys moved. A copy is written only if absent, so a step repeated after a
        crash does not queue an event twice; the outbox object goes once every copy is written.
        """
        outbox = self.config.prefix + "outbox/"
        moved = []
        for key in list(itertools.islice(self.storage.list(outbox), BATCH)):
            try:
                data = self.storage.read(outbox + key)
            except KeyNotFound:
                continue
            try:
                event = _read_record(data)
            except ValueError as exc:
                self.logger.error("webhooks: dropping unreadable outbox object %s: %s", outbox + key, exc)
                self.storage.delete(outbox + key)
                continue
            for endpoint in self.config.endpoints:
                if endpoint.matches(event):
                    self.storage.write(self.queue_prefix(endpoint) + key, data, if_absent=True)
                    self._endpoint_wakes[endpoint.name].set()
            self.storage.delete(outbox + key)
            moved.append(key)
        return moved

    def _deliver(self, endpoint: Endpoint, report: DispatchReport) -> bool:
        """POST up to :data:`BATCH` queued events of ``endpoint`` in order, unless it is backing off.

        Stops at the first failure. Returns whether a full batch went (more may be waiting).
        """
        backoff = self._backoff[endpoint.name]
        if self.clock() < backoff.next_attempt:
            return False
        prefix = self.queue_prefix(endpoint)
        keys = list(itertools.islice(self.storage.list(prefix), BATCH))
        for key in keys:
            now = self.clock()
            if not self._lease.hold(now):
                return False
            try:
                data = self.storage.read(prefix + key)
            except KeyNotFound:
                continue
            try:
                event = _read_record(data)
            except ValueError as exc:
                self.logger.error("webhook %s: dropping unreadable queued object %s: %s",
                                  endpoint.name, prefix + key, exc)
                self._drop(prefix + key, endpoint, report)
                continue
            age = now - event.timestamp.timestamp()
            if age > endpoint.retention:
                self.logger.warning(
                    "webhook %s: dropping event %s (%s %s %s at %s): not delivered within %s",
                    endpoint.name, event.id, event.action, event.kind, event.repository,
                    event.to_dict()["timestamp"], format_duration(endpoint.retention))
                self._drop(prefix + key, endpoint, report)
                continue
            error = self._post(endpoint, *endpoint.render(event))
            if error is not None:
                delay = backoff.failed(self.clock(), endpoint)
                report.failed[endpoint.name] = error
                self.logger.warning("webhook %s: delivering event %s to %s failed (%s); attempt %d, "
                                    "next in %gs", endpoint.name, event.id, endpoint.url, error,
                                    backoff.failures, delay)
                return False
            if backoff.failures:
                self.logger.info("webhook %s: delivering again after %d failed attempt(s)",
                                 endpoint.name, backoff.failures)
            backoff.succeeded()
            self.storage.delete(prefix + key)
            report.delivered[endpoint.name] = report.delivered.get(endpoint.name, 0) + 1
        return len(keys) == BATCH

    def _drop(self, key: str, endpoint: Endpoint, report: DispatchReport) -> None:
        self.storage.delete(key)
        report.dropped[endpoint.name] = report.dropped.get(endpoint.name, 0) + 1

    def _post(self, endpoint: Endpoint, body: bytes, headers: Mapping[str, str]) -> str | None:
        """POST ``body``; ``None`` if the endpoint accepted it (2xx, 3xx), else what went wrong."""
        request = urllib.request.Request(endpoint.url, data=body, headers=dict(headers), method="POST")
        try:
            with self._opener.open(request, timeout=endpoint.timeout) as response:
                response.read(_RESPONSE_READ)
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.close()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if 200 <= status < 400 else f"HTTP {status}"

    def backlog(self) -> dict[str, int]:
        """How many events wait: ``"outbox"`` (not yet queued) and per endpoint name (for monitoring)."""
        counts = {"outbox": sum(1 for _ in self.storage.list(self.config.prefix + "outbox/"))}
        for endpoint in self.config.endpoints:
            counts[endpoint.name] = sum(1 for _ in self.storage.list(self.queue_prefix(endpoint)))
        return counts

    # -- the threads ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the outbox now (the :class:`Outbox` of this process calls it after each write)."""
        self._wake.set()

    def start(self) -> None:
        """Run in background threads until :meth:`stop`: one moves the outbox, one per endpoint POSTs."""
        if self._threads:
            raise RuntimeError("the dispatcher is already running")
        self._stopping.clear()
        self._threads = [threading.Thread(target=self._run_outbox, name="webhooks-outbox", daemon=True)]
        self._threads += [
            threading.Thread(target=self._run_endpoint, args=(e,), name=f"webhook-{e.name}", daemon=True)
            for e in self.config.endpoints
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the threads (each finishes the POST it is in) and give the lease up."""
        self._stopping.set()
        self._wake.set()
        for wake in self._endpoint_wakes.values():
            wake.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        self._lease.release(self.clock())

    def _run_outbox(self) -> None:
        leader = False
        while not self._stopping.is_set():
            try:
                was_leader, leader = leader, self._lease.hold(self.clock())
                if leader and not was_leader:
                    self.logger.info("webhooks: %s delivers events now", self.owner)
                    for wake in self._endpoint_wakes.values():
                        wake.set()  # the queues may hold what the previous holder left
                if leader:
                    while len(self.fan_out()) == BATCH and not self._stopping.is_set():
                        pass
            except Exception:
                self.logger.exception("webhooks: reading the outbox failed; trying again")
            self._wake.wait(self.poll_interval)
            self._wake.clear()

    def _run_endpoint(self, endpoint: Endpoint) -> None:
        wake = self._endpoint_wakes[endpoint.name]
        backoff = self._backoff[endpoint.name]
        while not self._stopping.is_set():
            timeout = self._lease.ttl / 3
            try:
                if self._lease.hold(self.clock()):
                    if self._deliver(endpoint, DispatchReport(leader=True)):
                        continue  # a full batch went: more may wait
                else:
                    timeout = self.poll_interval
                wait = backoff.next_attempt - self.clock()
                if wait > 0:
                    timeout = min(timeout, wait)
            except Exception:
                self.logger.exception("webhook %s: delivery step failed; trying again", endpoint.name)
                timeout = self.poll_interval
            wake.wait(timeout)
            wake.clear()


def install(registry: "Registry", config: WebhookConfig, **options: Any) -> Dispatcher:
    """Subscribe an :class:`Outbox` to ``registry.events`` and return a :class:`Dispatcher`
    over ``registry.storage`` (not started: call ``start()`` where it should run).

    ``options`` go to :class:`Dispatcher`. Requests record only the actions some endpoint wants.
    """
    dispatcher = Dispatcher(registry.storage, config, **options)
    registry.events.subscribe(Outbox(registry.storage, config, on_write=dispatcher.wake),
                              actions=config.actions)
    return dispatcher
