"""A real webhook endpoint for tests: ``http.server`` on loopback, in a thread, that can fail.

It records every POST (path, headers, body, the status it answered) before answering, so once a
dispatcher's POST returned, the request is in :attr:`Receiver.requests`: tests need no waiting
to see it. :meth:`fail` queues error statuses for the next requests, :meth:`stop` closes the
port (connections are refused) and :meth:`restart` listens on the same port again.
:meth:`hold_next` keeps the next request waiting (after :attr:`Receiver.entered` is set) until
:meth:`release`, so that a test can run something while a POST is in flight.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["Receiver", "Received"]


@dataclass(frozen=True)
class Received:
    """One POST as the receiver got it, and the status it answered."""

    path: str
    headers: Message
    body: bytes
    status: int

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 400


class Receiver:
    """Answers 202 to every POST unless told to fail; see the module docstring."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses: list[int] = []
        self._lock = threading.Lock()
        #: Set after each request is recorded (for tests of the dispatcher's own threads).
        self.arrived = threading.Event()
        #: Set when a held request has arrived and waits for :meth:`release`.
        self.entered = threading.Event()
        self._gate: threading.Event | None = None
        self.port = 0
        self._listen()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver._lock:
                    gate, receiver._gate = receiver._gate, None
                if gate is not None:
                    receiver.entered.set()
                    gate.wait(60)
                with receiver._lock:
                    status = receiver._statuses.pop(0) if receiver._statuses else 202
                    receiver.requests.append(Received(self.path, self.headers, body, status))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver",
                                        daemon=True)
        self._thread.start()
        self.listening = True

    def fail(self, *statuses: int) -> None:
        """Answer the next requests with these statuses, then 202 again."""
        with self._lock:
            self._statuses.extend(statuses)

    def hold_next(self) -> None:
        """Keep the next request waiting until :meth:`release` (at most a minute)."""
        with self._lock:
            self._gate = threading.Event()
        self.entered.clear()
        self._held = self._gate

    def release(self) -> None:
        self._held.set()

    def stop(self) -> None:
        """Stop listening: the port is closed and connections to it are refused."""
        if not self.listening:
            return
        self.listening = False
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def restart(self) -> None:
        """Listen on the same port again."""
        self._listen()

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()
            self._statuses.clear()
        self.arrived.clear()

    def accepted(self, path: str | None = None) -> list[Received]:
        """The requests answered with success (to ``path`` if given), in arrival order."""
        return [r for r in self.requests if r.accepted and (path is None or r.path == path)]
