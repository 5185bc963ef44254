"""Upstream registries on loopback for the pull-through cache's tests, and ways to hold them.

:class:`UpstreamSite` serves a real :class:`~docker_registry_wsgi.Registry` (or any WSGI app:
the registry with its token issuer) with werkzeug's threaded HTTP server on a free loopback
port. Every request it gets is recorded (:attr:`UpstreamSite.requests`), so a test counts what
the cache asked; :meth:`UpstreamSite.hold` stops the answer to a chosen request before it
starts or after some bytes of its body, until the test releases it: interleavings are chosen,
not hoped for.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import webtest
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from tests.handlers import RegistryClient

__all__ = ["UpstreamSite", "Hold", "FakeClock"]

WAIT = 30.0  # a bound on every wait for another thread: a failure, never a timing


@dataclass
class FakeClock:
    """A clock the tests move by hand (``Mirrors(clock=...)``)."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Hold:
    """The answer to the first request matching ``method`` and ``fragment``, held until released.

    With ``after`` set, the held point is after that many bytes of the body were sent;
    otherwise before the request reaches the registry.
    """

    method: str
    fragment: str
    after: int | None = None
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    used: bool = False
    aborted: bool = False

    def wait_reached(self) -> None:
        assert self.reached.wait(WAIT), f"no {self.method} {self.fragment} reached the upstream"

    def release(self) -> None:
        self.released.set()

    def abort(self) -> None:
        """Drop the connection at the held point instead of going on (the upstream failed)."""
        self.aborted = True
        self.released.set()

    def _stop_here(self) -> None:
        self.reached.set()
        assert self.released.wait(WAIT), "the test never released the held request"
        if self.aborted:
            # werkzeug's server takes a ConnectionError as a dropped connection and closes it.
            raise ConnectionResetError("the test aborted this answer")


class _Quiet(WSGIRequestHandler):
    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002 - werkzeug's signature
        pass


class UpstreamSite:
    """A WSGI app served on 127.0.0.1, recording requests and holding chosen ones."""

    def __init__(self, app: Callable[..., Iterable[bytes]], registry: Any = None) -> None:
        self.app = app
        #: The registry behind ``app`` (for seeding content through WebTest, unrecorded).
        self.registry = registry if registry is not None else app
        self.requests: list[tuple[str, str]] = []
        self.holds: list[Hold] = []
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def seed(self) -> RegistryClient:
        """Pushes content straight into the registry (not through HTTP, not recorded)."""
        return RegistryClient(webtest.TestApp(self.registry))

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> "UpstreamSite":
        self._server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_Quiet)
        server = self._server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.02),
                                        daemon=True, name="upstream")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering: later connections are refused."""
        for hold in self.holds:
            hold.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(WAIT)
            self._thread = None

    def hold(self, method: str, fragment: str, after: int | None = None) -> Hold:
        held = Hold(method, fragment, after)
        with self._lock:
            self.holds.append(held)
        return held

    def count(self, method: str, fragment: str = "") -> int:
        """How many ``method`` requests whose path contains ``fragment`` the upstream got."""
        with self._lock:
            return sum(1 for m, path in self.requests if m == method and fragment in path)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            self.requests.append((method, path))
            hold = next((h for h in self.holds if not h.used and h.method == method and h.fragment in path), None)
            if hold is not None:
                hold.used = True
        if hold is not None and hold.after is None:
            hold._stop_here()
        body = self.app(environ, start_response)
        if hold is not None and hold.after is not None:
            return _HeldBody(body, hold)
        return body


class _HeldBody:
    """A response body that stops after ``hold.after`` bytes until the hold is released."""

    def __init__(self, body: Iterable[bytes], hold: Hold) -> None:
        self.body, self.hold = body, hold

    def __iter__(self) -> Iterator[bytes]:
        sent, limit, held = 0, self.hold.after or 0, False
        for chunk in self.body:
            if not held and sent + len(chunk) >= limit:
                yield chunk[: limit - sent]
                self.hold._stop_here()
                held = True
                chunk = chunk[limit - sent:]
                sent = limit
            sent += len(chunk)
            if chunk:
                yield chunk

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()
