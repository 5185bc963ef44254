"""HTTP/1.1 on raw sockets, for requests no client library sends: broken chunked framing, bodies
cut off by a half-close, pipelined requests, transfer codings other than chunked.

Typical use::

    with connect(server.hostport) as sock:
        location = start_session(sock, "lib/app")
        sock.sendall(request("PATCH", location, b"data"))
        [(status, headers, body)] = responses(sock, 1)

    status, headers, body = exchange(server.hostport, head + broken_body, half_close=True)
"""

from __future__ import annotations

import re
import socket
from typing import Mapping

__all__ = ["Response", "connect", "request", "responses", "exchange", "start_session"]

#: ``(status, headers with lower-case names, body)``.
Response = tuple[int, dict[str, str], bytes]


def connect(hostport: str, timeout: float = 30.0) -> socket.socket:
    """A TCP connection to ``host:port``."""
    host, port = hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def request(method: str, path: str, body: bytes = b"", headers: Mapping[str, str] | None = None,
            host: str = "x") -> bytes:
    """A request with ``Content-Length`` (unless ``headers`` frame the body otherwise)."""
    fields = {"Host": host, **(headers or {})}
    if "Transfer-Encoding" not in fields:
        fields.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    return head.encode() + body


def responses(sock: socket.socket, count: int, head: bool = False) -> list[Response]:
    """Read ``count`` responses from ``sock``; bodies by Content-Length (none for ``HEAD``)."""
    data = b""
    found: list[Response] = []
    while len(found) < count:
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            assert more, f"connection closed after {len(found)} responses"
            data += more
        header_block, _, data = data.partition(b"\r\n\r\n")
        lines = header_block.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(data) < length:
            more = sock.recv(65536)
            assert more, "connection closed in a response body"
            data += more
        body, data = data[:length], data[length:]
        found.append((int(lines[0].split()[1]), headers, body))
    return found


def exchange(hostport: str, data: bytes, half_close: bool = False) -> Response:
    """Send ``data`` on a new connection (then half-close it if asked) and read one response."""
    with connect(hostport) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        [response] = responses(sock, 1)
        return response


def start_session(sock: socket.socket, name: str) -> str:
    """POST a new upload session for repository ``name``; its path (the ``Location`` without host)."""
    sock.sendall(request("POST", f"/v2/{name}/blobs/uploads/"))
    [(status, headers, body)] = responses(sock, 1)
    assert status == 202, body
    return re.sub(r"^https?://[^/]+", "", headers["location"])
