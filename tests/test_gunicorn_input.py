"""The gunicorn fast path for request bodies, against a real gunicorn (the standalone server).

It must keep gunicorn's connection bookkeeping right: a keep-alive connection serves the next
request after a body read from the socket, a request pipelined behind a body is not eaten, and a
client that stops mid-body costs only its own connection.
"""

from __future__ import annotations

import hashlib
import re
import socket
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.servers import RegistryServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    with RegistryServer(tmp_path_factory.mktemp("gunicorn-input"), extra_args=["--workers", "1"]) as srv:
        yield srv


def _connect(server: RegistryServer) -> socket.socket:
    host, port = server.hostport.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


def _request(method: str, path: str, body: bytes = b"", host: str = "x") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


def _responses(sock: socket.socket, count: int, head: bool = False) -> list[tuple[int, dict[str, str]]]:
    """Read ``count`` responses from ``sock``; bodies by Content-Length (none for ``HEAD``)."""
    data, found = b"", []
    while len(found) < count:
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            assert more, f"connection closed after {len(found)} responses"
            data += more
        head, _, data = data.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = 0 if head else int(headers.get("content-length", "0"))
        while len(data) < length:
            data += sock.recv(65536)
        data = data[length:]
        found.append((int(lines[0].split()[1]), headers))
    return found


def _session(sock: socket.socket, name: str) -> str:
    sock.sendall(_request("POST", f"/v2/{name}/blobs/uploads/"))
    [(status, headers)] = _responses(sock, 1)
    assert status == 202
    return re.sub(r"^https?://[^/]+", "", headers["location"])


def test_keepalive_connection_serves_requests_after_a_body(server: RegistryServer) -> None:
    blob = bytes(range(256)) * 8192  # 2 MiB: several recv() calls
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with _connect(server) as sock:
        location = _session(sock, "gi/keepalive")
        sock.sendall(_request("PUT", f"{location}?digest={digest}", blob))
        [(status, _)] = _responses(sock, 1)
        assert status == 201
        sock.sendall(_request("HEAD", f"/v2/gi/keepalive/blobs/{digest}"))
        [(status, headers)] = _responses(sock, 1, head=True)
        assert status == 200 and headers["docker-content-digest"] == digest


def test_pipelined_request_behind_a_body_is_served(server: RegistryServer) -> None:
    blob = b"pipelined body " * 1000
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    with _connect(server) as sock:
        location = _session(sock, "gi/pipelined")
        # Both requests in one send: gunicorn reads ahead past the first body.
        sock.sendall(_request("PATCH", location, blob) + _request("GET", "/v2/"))
        (patch_status, patch_headers), (base_status, _) = _responses(sock, 2)
        assert patch_status == 202 and patch_headers["range"] == f"0-{len(blob) - 1}"
        assert base_status == 200
        sock.sendall(_request("PUT", f"{location}?digest={digest}"))
        [(status, _)] = _responses(sock, 1)
        assert status == 201


def test_client_gone_mid_body_leaves_the_session_usable(server: RegistryServer, tmp_path: Path) -> None:
    with _connect(server) as sock:
        location = _session(sock, "gi/dropped")
    with _connect(server) as sock:
        head = f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
        sock.sendall(head.encode() + b"x" * 1000)
    # The session is still at offset 0, and the server still answers.
    with _connect(server) as sock:
        sock.sendall(_request("GET", location))
        [(status, headers)] = _responses(sock, 1)
        assert status == 204 and headers["range"] == "0-0"
