"""A tiny round-robin HTTP/1.1 reverse proxy for tests: each request goes to the next backend.

Load balancers spread requests, not connections, across hosts, and a client keeps one
connection for a whole push; so this proxy picks a backend per request (round robin), which
makes consecutive requests of one upload land on different registry processes. Bodies are
streamed both ways in bounded pieces (``Content-Length`` or ``Transfer-Encoding: chunked``),
the ``Host`` header is passed through (the registry builds ``Location`` URLs from it, so they
point back at the proxy), :attr:`RoundRobinProxy.counts` says how many requests each
backend got and :attr:`RoundRobinProxy.log` lists them (``(method, path)``, in order). Binds 127.0.0.1 on a free port; use it as a context manager::

    with RoundRobinProxy(["127.0.0.1:5001", "127.0.0.1:5002"]) as proxy:
        skopeo copy ... docker://{proxy.hostport}/repo:tag
"""

from __future__ import annotations

import http.client
import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Iterator, Sequence

__all__ = ["RoundRobinProxy"]

PIECE = 256 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass  # the registries log the requests; stderr stays quiet

    def _forward(self) -> None:
        backend = self.server.proxy.next_backend(self.command, self.path)
        host, _, port = backend.rpartition(":")
        upstream = http.client.HTTPConnection(host, int(port), timeout=300)
        try:
            # A list, not a dict: clients repeat headers (skopeo sends one Accept per media type).
            headers = [(k, v) for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP]
            chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
            length = int(self.headers.get("Content-Length") or 0)
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            if chunked:
                upstream.putheader("Transfer-Encoding", "chunked")
            upstream.endheaders()
            if chunked:
                for piece in self._chunked_body():
                    upstream.send(b"%x\r\n%s\r\n" % (len(piece), piece))
                upstream.send(b"0\r\n\r\n")
            else:
                remaining = length
                while remaining:
                    piece = self.rfile.read(min(PIECE, remaining))
                    if not piece:
                        raise ConnectionError("client closed the request body early")
                    upstream.send(piece)
                    remaining -= len(piece)
            response = upstream.getresponse()
            self._relay(response)
        except (OSError, http.client.HTTPException) as exc:
            self.close_connection = True
            try:
                self.send_error(502, f"backend {backend}: {exc}")
            except OSError:
                pass
        finally:
            upstream.close()

    def _chunked_body(self) -> Iterator[bytes]:
        while True:
            size_line = self.rfile.readline(1024)
            size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return
            remaining = size
            while remaining:
                piece = self.rfile.read(min(PIECE, remaining))
                if not piece:
                    raise ConnectionError("client closed a chunk early")
                remaining -= len(piece)
                yield piece
            self.rfile.readline(16)

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        length = response.getheader("Content-Length")
        bodyless = self.command == "HEAD" or response.status in (204, 304) or 100 <= response.status < 200
        for name, value in response.getheaders():
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        chunked = not bodyless and length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if bodyless:
            return
        while True:
            piece = response.read(PIECE)
            if not piece:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: "RoundRobinProxy") -> None:
        self.proxy = proxy
        super().__init__(("127.0.0.1", 0), _Handler)


class RoundRobinProxy:
    """Forward each request to the next of ``backends`` (``host:port`` strings) in turn."""

    def __init__(self, backends: Sequence[str]) -> None:
        if not backends:
            raise ValueError("at least one backend")
        self.backends = list(backends)
        self.counts = {backend: 0 for backend in self.backends}
        self.log: list[tuple[str, str]] = []
        self._cycle = itertools.cycle(self.backends)
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def next_backend(self, method: str = "", path: str = "") -> str:
        with self._lock:
            backend = next(self._cycle)
            self.counts[backend] += 1
            self.log.append((method, path))
            return backend

    def count(self, method: str, fragment: str = "") -> int:
        """How many ``method`` requests whose path contains ``fragment`` were forwarded."""
        with self._lock:
            return sum(1 for m, path in self.log if m == method and fragment in path)

    @property
    def port(self) -> int:
        assert self._server is not None, "proxy not started"
        return int(self._server.server_address[1])

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.hostport}"

    def start(self) -> "RoundRobinProxy":
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="round-robin-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> "RoundRobinProxy":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
