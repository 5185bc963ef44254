"""HTTP/1.1 over a plain socket, for tests that must control every byte a client sends and when.

http.client and requests send a request whole; these helpers let a test send part of a head or
a body, stop, and read exactly one response later. Every socket has a timeout, so a server that
never answers fails the test instead of hanging it (a failure bound, not a timing assertion).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

__all__ = ["Response", "connect", "request", "read_response", "exchange", "upload_session"]

#: Seconds any single socket operation of a test may wait before the test fails.
TIMEOUT = 30.0


@dataclass
class Response:
    """One response: status, headers (lower-case names) and body."""

    status: int
    headers: dict[str, str]
    body: bytes


def connect(hostport: str, timeout: float = TIMEOUT) -> socket.socket:
    """A new connection to ``host:port``."""
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of a request with ``Content-Length`` (unless ``headers`` set the framing)."""
    fields = {"Host": "registry.test", **(headers or {})}
    if "Transfer-Encoding" not in fields:
        fields.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head.encode() + body


def read_response(sock: socket.socket, method: str = "GET", pending: bytearray | None = None) -> Response:
    """Read one response (body by ``Content-Length``; none for ``HEAD``).

    ``pending`` holds bytes read past a previous response on the same connection and receives
    those read past this one; raises ``ConnectionError`` if the server closes first.
    """
    data = pending if pending is not None else bytearray()
    while b"\r\n\r\n" not in data:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError(f"connection closed before a whole response head: {bytes(data)!r}")
        data += more
    end = data.index(b"\r\n\r\n")
    lines = data[:end].decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = 0 if method == "HEAD" else int(headers.get("content-length", "0"))
    del data[: end + 4]
    while len(data) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed inside a response body")
        data += more
    body = bytes(data[:length])
    del data[:length]
    return Response(int(lines[0].split()[1]), headers, body)


def exchange(hostport: str, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None, timeout: float = TIMEOUT) -> Response:
    """One request on a new connection, and its response."""
    with connect(hostport, timeout) as sock:
        sock.sendall(request(method, path, body, headers))
        return read_response(sock, method)


def upload_session(hostport: str, repository: str) -> str:
    """POST a new upload session; return its location as a path."""
    response = exchange(hostport, "POST", f"/v2/{repository}/blobs/uploads/")
    assert response.status == 202, response
    return re.sub(r"^https?://[^/]+", "", response.headers["location"])
