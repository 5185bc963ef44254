"""Health checks: ``/livez`` (the process answers) and ``/readyz`` (storage does a real round trip).

Readiness writes a small probe object under a key of its own (``health/probe-<random>``), reads it
back and deletes it, in a worker thread bounded by a deadline, so that a stuck store makes
``/readyz`` answer 503 in time instead of hanging. At most one probe per :class:`StorageProbe` is
in flight: while a stuck one holds its thread, later checks report it without starting another.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import threading
import time
from typing import Any, Callable, Iterable

from .errors import MethodNotAllowed, NotFound
from .options import Option, boolean, number
from .responses import error_reply
from .storage.base import Storage

__all__ = [
    "HealthApp",
    "StorageProbe",
    "check_storage",
    "startup_failure",
    "OPTIONS",
    "PROBE_PREFIX",
    "DEFAULT_TIMEOUT",
]

#: Where probe objects live; nothing else of the registry uses this prefix.
PROBE_PREFIX = "health/"
#: Seconds a readiness check waits for the storage's round trip.
DEFAULT_TIMEOUT = 5.0

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _describe(exc: BaseException) -> str:
    """An exception as one short line: its type and its message, whitespace folded."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


def round_trip(storage: Storage) -> str | None:
    """Write, read back and delete a fresh probe object; ``None`` if all worked, else why not."""
    key = f"{PROBE_PREFIX}probe-{secrets.token_hex(8)}"
    data = f"readiness probe {time.time():.3f}\n".encode()
    try:
        storage.write(key, data)
    except Exception as exc:
        return f"cannot write {key}: {_describe(exc)}"
    reason: str | None
    try:
        got = storage.read(key)
    except Exception as exc:
        reason = f"cannot read back {key}: {_describe(exc)}"
    else:
        reason = None if got == data else f"read back other bytes than were written to {key}"
    try:
        storage.delete(key)
    except Exception as exc:
        reason = reason or f"cannot delete {key}: {_describe(exc)}"
    return reason


class _Attempt:
    """One round trip running in its own thread, and its outcome once it ends."""

    def __init__(self, storage: Storage) -> None:
        self.started = time.monotonic()
        self.done = threading.Event()
        self.reason: str | None = None
        self._storage = storage
        threading.Thread(target=self._run, name="registry-readiness-probe", daemon=True).start()

    def _run(self) -> None:
        try:
            self.reason = round_trip(self._storage)
        except BaseException as exc:  # noqa: BLE001 - the thread must always report
            self.reason = f"probe failed: {_describe(exc)}"
        finally:
            self.done.set()


class StorageProbe:
    """Readiness checks of one storage, each bounded by ``timeout`` seconds, one in flight at most.

    A check that finds a round trip still running (another request's, or one that outlived its
    deadline) waits for that one instead of starting another, for what is left of its deadline.
    """

    def __init__(self, storage: Storage, timeout: float = DEFAULT_TIMEOUT) -> None:
        if timeout <= 0:
            raise ValueError("the readiness timeout must be positive")
        self.storage = storage
        self.timeout = timeout
        self._lock = threading.Lock()
        self._attempt: _Attempt | None = None

    def check(self) -> str | None:
        """``None`` if the storage did a round trip within the deadline, else a one-line reason."""
        with self._lock:
            attempt = self._attempt
            if attempt is None or attempt.done.is_set():
                attempt = self._attempt = _Attempt(self.storage)
        if attempt.done.wait(max(0.0, attempt.started + self.timeout - time.monotonic())):
            return attempt.reason
        waited = time.monotonic() - attempt.started
        return (f"storage did not answer a round trip within {self.timeout:g} s "
                f"(the probe has been waiting {waited:.1f} s)")


def check_storage(storage: Storage, timeout: float = DEFAULT_TIMEOUT) -> str | None:
    """One readiness check: ``None`` when ``storage`` works, else a one-line reason."""
    return StorageProbe(storage, timeout).check()


class HealthApp:
    """A WSGI app answering ``GET``/``HEAD`` ``/livez`` and ``/readyz`` below where it is mounted.

    ``/livez``: 200 ``ok`` while the process answers. ``/readyz``: 200 ``ok`` when ``storage``
    does a round trip within ``timeout`` seconds, else 503 with the reason (text/plain).
    Neither asks for credentials. Other paths go to ``fallback`` when given, else 404.
    """

    def __init__(self, storage: Storage, *, timeout: float = DEFAULT_TIMEOUT,
                 fallback: WSGIApp | None = None) -> None:
        self.probe = StorageProbe(storage, timeout)
        self.fallback = fallback

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path not in ("/livez", "/readyz"):
            if self.fallback is not None:
                return self.fallback(environ, start_response)
            return error_reply(NotFound({"path": path[:200]}))(environ, start_response)
        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            error = MethodNotAllowed({"method": method[:20]}, headers={"Allow": "GET, HEAD"})
            return error_reply(error)(environ, start_response)
        reason = self.probe.check() if path == "/readyz" else None
        if reason is None:
            status, body = "200 OK", b"ok\n"
        else:
            status, body = "503 Service Unavailable", f"storage: {reason}\n".encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), ("Cache-Control", "no-store")])
        return [] if method == "HEAD" else [body]


OPTIONS = (
    Option("start-degraded", boolean(), "start even when the storage check at start fails; /readyz "
           "answers 503 until storage works", default=False, group="health"),
    Option("readiness-timeout", number(above=0, unit="seconds"), "how long the storage check (at "
           "start and on /readyz) waits for a round trip", default=DEFAULT_TIMEOUT, group="health"),
)


def startup_failure(namespace: argparse.Namespace, build: Callable[[], Storage],
                    logger: logging.Logger | None = None) -> str | None:
    """The check ``serve`` makes at start: a message to exit with (status 1), or ``None`` to go on.

    ``build`` makes the storage the options name (``lambda: storage_config.build(namespace)``);
    a storage that cannot even be opened (a root folder that cannot be created) fails the check
    too, while a configuration error (ValueError, a missing extra) propagates as it is. The
    storage is closed again. With ``--start-degraded`` a failed check is logged as a warning.
    """
    try:
        storage = build()
    except (ValueError, ImportError):
        raise
    except Exception as exc:
        reason: str | None = f"cannot open the storage: {_describe(exc)}"
    else:
        try:
            reason = check_storage(storage, namespace.readiness_timeout)
        finally:
            storage.close()
    if reason is None:
        return None
    if namespace.start_degraded:
        (logger or logging.getLogger("docker_registry_wsgi")).warning(
            "starting degraded: the storage check failed: %s", reason)
        return None
    return f"the storage check failed: {reason} (--start-degraded starts anyway)"
