"""In-process hooks: what the registry did (push, pull, delete, mount), told to subscribers.

A :class:`Registry` has an :class:`EventHub` (``registry.events``). After a request's action
succeeded, the hub calls each subscriber with one :class:`Event` per thing that happened::

    def audit(event: Event) -> None:
        log.info("%s %s %s@%s by %s", event.action, event.kind, event.repository,
                 event.digest or event.tag, event.user)

    registry.events.subscribe(audit, actions={"push", "delete"})

Subscribers run in the request's thread, before the response is sent, one after the other. An
exception in one is logged and never reaches the client. With no subscriber (or none active) a
request builds no event at all. :mod:`.webhooks` is a subscriber that writes each event to the
storage for delivery later; the Flask, Django and Pyramid integrations turn events into signals.

Which requests emit which events, and with which fields: docs/events.rst.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping, MutableMapping

from .auth.policy import identity_name

__all__ = [
    "Event",
    "EventHub",
    "Happened",
    "RequestRecord",
    "Subscriber",
    "ACTIONS",
    "KINDS",
    "BLOB_MEDIA_TYPE",
    "PUSH",
    "PULL",
    "DELETE",
    "MOUNT",
    "REQUEST_ID_KEY",
    "request_id",
    "parse_request_id",
    "parse_actions",
    "parse_time",
    "microseconds",
]

PUSH, PULL, DELETE, MOUNT = "push", "pull", "delete", "mount"
#: Every action, as distribution's notifications name them.
ACTIONS = (PUSH, PULL, DELETE, MOUNT)
#: What an event is about: a blob, a manifest, or (deleting a tag) only a tag.
KINDS = ("blob", "manifest", "tag")
#: The media type of blobs in events: the registry does not know what a blob is.
BLOB_MEDIA_TYPE = "application/octet-stream"

#: The WSGI environ key holding the request's id; :func:`request_id` sets and reads it.
REQUEST_ID_KEY = "docker_registry_wsgi.request_id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._~:/+=@-]{1,200}")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)

Subscriber = Callable[["Event"], None]


def parse_request_id(header: str | None) -> str | None:
    """An incoming ``X-Request-ID`` if it is safe to echo and log (1-200 of ``[A-Za-z0-9._~:/+=@-]``)."""
    if header is not None and _REQUEST_ID.fullmatch(header):
        return header
    return None


def request_id(environ: MutableMapping[str, Any]) -> str:
    """The id of the request: stored under :data:`REQUEST_ID_KEY`, else a valid ``X-Request-ID``,
    else a new UUID; stored in ``environ`` so that logs and events of the request share it.

    Call it in the outermost layer that wants the id: middleware that copies the environ (a
    mounted registry gets a copy) passes the key on to the copy, not back.
    """
    found = environ.get(REQUEST_ID_KEY)
    if isinstance(found, str):
        return found
    value = parse_request_id(environ.get("HTTP_X_REQUEST_ID")) or str(uuid.uuid4())
    environ[REQUEST_ID_KEY] = value
    return value


@dataclass(frozen=True)
class RequestRecord:
    """The request that caused an event (distribution's ``RequestRecord``)."""

    id: str
    #: ``REMOTE_ADDR`` (behind a proxy, rewrite it with e.g. werkzeug's ``ProxyFix``).
    addr: str = ""
    #: The ``Host`` header: the registry's name as the client used it.
    host: str = ""
    method: str = ""
    useragent: str = ""


@dataclass(frozen=True)
class Event:
    """One thing the registry did, after it succeeded. Fields a kind has no value for are ``None``."""

    #: A UUID, unique per event: receivers of webhooks deliver at least once and deduplicate by it.
    id: str
    #: When it happened (UTC). Events of one request are a microsecond apart, and each event of
    #: a hub is later than the one before, even if the clock stood still.
    timestamp: datetime
    #: ``push``, ``pull``, ``delete`` or ``mount``.
    action: str
    #: ``blob``, ``manifest`` or ``tag``.
    kind: str
    repository: str
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    tag: str | None = None
    #: The repository a mounted blob came from (``None`` for a mount without ``from``).
    from_repository: str | None = None
    #: Where the content can be fetched (absolute, built from the request's ``Host``).
    url: str | None = None
    #: The caller's user name (from the auth hook's identity), ``None`` when anonymous.
    user: str | None = None
    request: RequestRecord = field(default_factory=lambda: RequestRecord(""))
    #: The registry node: ``<hostname>:<port>``, as distribution's ``source.addr``.
    source_addr: str = ""
    #: Identifies the running registry; changes with every start (``source.instanceID``).
    instance_id: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready mapping of every field (the outbox's stored form); :meth:`from_dict` reads it."""
        doc: dict[str, Any] = {
            "id": self.id,
            "timestamp": _format_time(self.timestamp),
            "action": self.action,
            "kind": self.kind,
            "repository": self.repository,
        }
        for name in ("digest", "media_type", "size", "tag", "from_repository", "url", "user"):
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        doc["request"] = {"id": self.request.id, "addr": self.request.addr, "host": self.request.host,
                          "method": self.request.method, "useragent": self.request.useragent}
        doc["source"] = {"addr": self.source_addr, "instance_id": self.instance_id}
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Event":
        """The event :meth:`to_dict` wrote; ``KeyError``/``ValueError``/``TypeError`` if malformed."""
        request = doc.get("request") or {}
        source = doc.get("source") or {}
        size = doc.get("size")
        return cls(
            id=str(doc["id"]),
            timestamp=parse_time(str(doc["timestamp"])),
            action=str(doc["action"]),
            kind=str(doc["kind"]),
            repository=str(doc["repository"]),
            digest=_optional(doc, "digest"),
            media_type=_optional(doc, "media_type"),
            size=None if size is None else int(size),
            tag=_optional(doc, "tag"),
            from_repository=_optional(doc, "from_repository"),
            url=_optional(doc, "url"),
            user=_optional(doc, "user"),
            request=RequestRecord(str(request.get("id", "")), str(request.get("addr", "")),
                                  str(request.get("host", "")), str(request.get("method", "")),
                                  str(request.get("useragent", ""))),
            source_addr=str(source.get("addr", "")),
            instance_id=str(source.get("instance_id", "")),
        )

    def to_distribution(self) -> dict[str, Any]:
        """The event in distribution's notification format (``notifications/event.go``).

        Fields without a value are left out, as distribution's ``omitempty`` does; deletes
        carry the repository and the digest (or the tag), as distribution's do.
        """
        target: dict[str, Any] = {}
        if self.media_type is not None:
            target["mediaType"] = self.media_type
        if self.digest is not None:
            target["digest"] = self.digest
        if self.size is not None:
            target["size"] = self.size
            target["length"] = self.size  # distribution's older name for size, still sent
        target["repository"] = self.repository
        if self.from_repository is not None:
            target["fromRepository"] = self.from_repository
        if self.url is not None:
            target["url"] = self.url
        if self.tag is not None:
            target["tag"] = self.tag
        request: dict[str, Any] = {"id": self.request.id}
        if self.request.addr:
            request["addr"] = self.request.addr
        if self.request.host:
            request["host"] = self.request.host
        request["method"] = self.request.method
        request["useragent"] = self.request.useragent
        source: dict[str, Any] = {}
        if self.source_addr:
            source["addr"] = self.source_addr
        if self.instance_id:
            source["instanceID"] = self.instance_id
        return {
            "id": self.id,
            "timestamp": _format_time(self.timestamp),
            "action": self.action,
            "target": target,
            "request": request,
            "actor": {"name": self.user} if self.user else {},
            "source": source,
        }


@dataclass(frozen=True)
class Happened:
    """What a handler records about its action; the hub adds the request, user and time."""

    action: str
    kind: str
    repository: str
    digest: str | None = None
    media_type: str | None = None
    size: int | None = None
    tag: str | None = None
    from_repository: str | None = None
    url: str | None = None


@dataclass(frozen=True)
class _Subscription:
    callback: Subscriber
    actions: frozenset[str]
    active: Callable[[], bool] | None


class EventHub:
    """Subscribers and the events they get; one per :class:`~docker_registry_wsgi.Registry`.

    :param clock: seconds since the epoch (tests inject one).
    :param source_addr: the node's ``host:port`` in events; default the host name and the
        request's ``SERVER_PORT``.
    """

    def __init__(
        self,
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] = time.time,
        source_addr: str | None = None,
        instance_id: str | None = None,
    ) -> None:
        self.logger = logger or logging.getLogger("docker_registry_wsgi.events")
        self.clock = clock
        self.instance_id = instance_id or str(uuid.uuid4())
        self._hostname = socket.gethostname()
        self._source_addr = source_addr
        # Replaced whole under the lock, read without it: a request sees one list or the other.
        self._subscriptions: tuple[_Subscription, ...] = ()
        self._lock = threading.Lock()
        self._last = datetime.min.replace(tzinfo=timezone.utc)

    def subscribe(
        self,
        callback: Subscriber,
        *,
        actions: Iterable[str] | None = None,
        active: Callable[[], bool] | None = None,
    ) -> Subscriber:
        """Call ``callback(event)`` after each successful action in ``actions`` (default: all).

        ``active``, if given, says whether the subscriber wants events right now (a framework
        signal with no receivers does not), so that requests build none for it. Returns
        ``callback``, so that this can decorate a function.
        """
        wanted = parse_actions(actions)
        with self._lock:
            self._subscriptions = (*self._subscriptions, _Subscription(callback, wanted, active))
        return callback

    def unsubscribe(self, callback: Subscriber) -> None:
        """Stop calling ``callback`` (every subscription of it)."""
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s.callback != callback)

    @property
    def active(self) -> bool:
        """Whether any subscriber wants events now; requests record nothing otherwise."""
        return bool(self.wanted())

    def wanted(self) -> frozenset[str]:
        """The actions some active subscriber wants now; a request records only these."""
        wanted: frozenset[str] = frozenset()
        for subscription in self._subscriptions:
            if subscription.active is None or subscription.active():
                wanted |= subscription.actions
        return wanted

    def publish(self, event: Event) -> None:
        """Give ``event`` to each subscriber of its action; log (never raise) what they raise."""
        for subscription in self._subscriptions:
            if event.action not in subscription.actions:
                continue
            if subscription.active is not None and not subscription.active():
                continue
            try:
                subscription.callback(event)
            except Exception:
                self.logger.exception("event subscriber %r failed on event %s (%s %s %s)",
                                      subscription.callback, event.id, event.action, event.kind,
                                      event.repository)

    def publish_request(self, environ: MutableMapping[str, Any], identity: object,
                        happened: Iterable[Happened]) -> list[Event]:
        """Turn what one request did into events (its id, caller and time added) and publish them."""
        happened = list(happened)
        with self._lock:
            # Strictly later than this hub's previous event, so that a process's events sort in
            # the order they happened even when the clock stands still or steps back.
            base = max(_from_timestamp(self.clock()), self._last + _MICROSECOND)
            self._last = base + _MICROSECOND * max(len(happened) - 1, 0)
        record = RequestRecord(
            id=request_id(environ),
            addr=str(environ.get("REMOTE_ADDR") or ""),
            host=str(environ.get("HTTP_HOST") or ""),
            method=str(environ.get("REQUEST_METHOD") or ""),
            useragent=str(environ.get("HTTP_USER_AGENT") or ""),
        )
        source = self._source_addr or f"{self._hostname}:{environ.get('SERVER_PORT', '')}".rstrip(":")
        user = identity_name(identity)
        events = []
        for index, what in enumerate(happened):
            event = Event(
                id=str(uuid.uuid4()),
                timestamp=base + _MICROSECOND * index,
                action=what.action,
                kind=what.kind,
                repository=what.repository,
                digest=what.digest,
                media_type=what.media_type,
                size=what.size,
                tag=what.tag,
                from_repository=what.from_repository,
                url=what.url,
                user=user,
                request=record,
                source_addr=source,
                instance_id=self.instance_id,
            )
            events.append(event)
            self.publish(event)
        return events


def _optional(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    return None if value is None else str(value)


def _from_timestamp(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, timezone.utc)


def _format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with microseconds, as Go's ``time.Time`` marshals (``...T...Z``)."""
    text = moment.astimezone(timezone.utc).isoformat(timespec="microseconds")
    return text[:-6] + "Z"  # "+00:00"


def parse_time(text: str) -> datetime:
    """A time :func:`_format_time` wrote (or any ISO 8601 time with an offset), in UTC."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"time without a zone: {text!r}")
    return moment.astimezone(timezone.utc)


def microseconds(moment: datetime) -> int:
    """Whole microseconds since the epoch: exact, so event times sort as integers."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


def parse_actions(actions: object) -> frozenset[str]:
    """The actions a filter names (a list of them; ``None`` is all); ``ValueError`` otherwise."""
    if actions is None:
        return frozenset(ACTIONS)
    if isinstance(actions, (str, bytes)) or not isinstance(actions, Iterable):
        raise ValueError(f"expected a list of actions (some of {', '.join(ACTIONS)}), not {actions!r}")
    wanted = list(actions)
    unknown = [a for a in wanted if a not in ACTIONS]
    if unknown:
        raise ValueError(f"unknown action(s) {', '.join(map(repr, unknown))}: use some of {', '.join(ACTIONS)}")
    return frozenset(wanted)
