"""Logs: one format for every line (the registry's, gunicorn's, the access log), and on each line
of a request its id, and the repository, upload and digest it works on where they apply.

The request's id is :func:`.events.request_id`'s (a valid ``X-Request-ID`` sent by the client,
else a new UUID), the one its events carry; the response returns it as ``X-Request-ID``. It
reaches log lines through a context variable that :func:`enter` sets for the request's thread
and :class:`ContextFilter` reads, so code that logs needs no logger of its own per request.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, MutableMapping, TextIO

from .events import request_id
from .options import Option, boolean, choice

__all__ = [
    "RequestLog",
    "ContextFilter",
    "TextFormatter",
    "JsonFormatter",
    "RequestIdMiddleware",
    "enter",
    "leave",
    "annotate",
    "current",
    "clear",
    "with_request_id",
    "formatter",
    "configure",
    "OPTIONS",
    "ACCESS_LOG",
    "LEVELS",
    "FORMATS",
    "REQUEST_ID_HEADER",
]

LEVELS = ("debug", "info", "warning", "error", "critical")
FORMATS = ("text", "json")
REQUEST_ID_HEADER = "X-Request-ID"
#: The record attributes a request's lines carry, in the order text lines show them.
FIELDS = ("request_id", "repository", "upload", "digest")
#: A field value a text line shows as it is; others (spaces, control characters) are quoted.
_PLAIN = re.compile(r"[!-~]{1,200}")

OPTIONS = (
    Option("log-level", choice(*LEVELS), "the least severe level logged, for the registry's lines "
           "and gunicorn's", default="info", group="logs"),
    Option("log-format", choice(*FORMATS), "text lines, or one JSON object per line", default="text",
           group="logs"),
)
ACCESS_LOG = Option("access-log", boolean(), "log every request to stderr, in the --log-format, "
                    "with its request id", default=False, group="logs")


@dataclass
class RequestLog:
    """What the log lines of one request carry besides their message."""

    request_id: str
    repository: str | None = None
    upload: str | None = None
    digest: str | None = None


_CURRENT: contextvars.ContextVar[RequestLog | None] = contextvars.ContextVar(
    "docker_registry_wsgi.request_log", default=None)


def current() -> RequestLog | None:
    """The request this thread is serving, if something called :func:`enter` for it."""
    return _CURRENT.get()


def enter(environ: MutableMapping[str, Any]) -> tuple[RequestLog, contextvars.Token[RequestLog | None] | None]:
    """Make ``environ``'s request the one this thread's log lines belong to.

    Returns its :class:`RequestLog` and a token for :func:`leave`; ``None`` when an outer layer
    (the server's :class:`RequestIdMiddleware`) already entered the same request.
    """
    rid = request_id(environ)
    found = _CURRENT.get()
    if found is not None and found.request_id == rid:
        return found, None
    log = RequestLog(rid)
    return log, _CURRENT.set(log)


def leave(token: contextvars.Token[RequestLog | None] | None) -> None:
    """Undo an :func:`enter` (nothing for ``None``)."""
    if token is not None:
        _CURRENT.reset(token)


def clear() -> None:
    """This thread serves no request now (the server's worker, after each request's access line)."""
    _CURRENT.set(None)


def annotate(*, repository: str | None = None, upload: str | None = None, digest: str | None = None) -> None:
    """Add to the current request's lines what it works on (nothing outside a request)."""
    log = _CURRENT.get()
    if log is None:
        return
    if repository:
        log.repository = repository
    if upload:
        log.upload = upload
    if digest:
        log.digest = digest


def with_request_id(start_response: Callable[..., Any], rid: str) -> Callable[..., Any]:
    """``start_response`` that adds ``X-Request-ID: rid`` to the response's headers."""
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return start_response(status, [*headers, (REQUEST_ID_HEADER, rid)], exc_info)
    return start


class RequestIdMiddleware:
    """The server's outermost app: every request (health, metrics and token paths too) gets its
    id, in the environ for the access log, in this thread's log lines, and in the response.

    It does not leave the request when the app returns: the body is sent afterwards, and the
    access line written after that; the worker calls :func:`clear` once the request is done.
    """

    def __init__(self, app: Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        log, token = enter(environ)
        # Only the layer that entered the request adds the header (a registry inside does not).
        return self.app(environ, with_request_id(start_response, log.request_id) if token else start_response)


class ContextFilter(logging.Filter):
    """Adds the current request's :data:`FIELDS` to each record that does not have them."""

    def filter(self, record: logging.LogRecord) -> bool:
        log = _CURRENT.get()
        for name in FIELDS:
            if getattr(record, name, None) is None:
                setattr(record, name, getattr(log, name) if log is not None else None)
        return True


def _timestamp(record: logging.LogRecord) -> str:
    """UTC, ISO 8601, milliseconds: ``2026-05-04T12:00:00.123Z``."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _plain(value: object) -> str:
    text = str(value)
    return text if _PLAIN.fullmatch(text) else json.dumps(text[:200])


class TextFormatter(logging.Formatter):
    """``<time> [<pid>] <LEVEL> <logger>: <message> request_id=... repository=... upload=...
    digest=...``; the process id tells gunicorn's workers apart."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} [{record.process}] {record.levelname} {record.name}: {record.getMessage()}"
        extras = " ".join(f"{name}={_plain(getattr(record, name))}" for name in FIELDS
                          if getattr(record, name, None) is not None)
        if extras:
            line += " " + extras
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``pid``, ``level``, ``logger``, ``message``, the request's
    fields that apply, an access line's ``access`` fields, and ``exception`` (the traceback)."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {"time": _timestamp(record), "pid": record.process,
                               "level": record.levelname.lower(), "logger": record.name,
                               "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                doc[name] = value
        access = getattr(record, "access", None)
        if isinstance(access, dict):
            doc.update(access)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter of ``--log-format`` (``text`` or ``json``)."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; expected one of {', '.join(FORMATS)}")
    return JsonFormatter() if log_format == "json" else TextFormatter()


def configure(level: str = "info", log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """Log every logger's records of ``level`` and above to ``stream`` (stderr) in ``log_format``.

    Replaces the handler an earlier call added; leaves other handlers alone. Returns the handler.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_docker_registry_wsgi", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    handler._docker_registry_wsgi = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    return handler
