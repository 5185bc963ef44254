"""Logs (docker_registry_wsgi/logs.py, gunicorn_logging.py): one format for every line, and on
every line of a request its id (``X-Request-ID`` honoured or made, and returned), repository,
upload and digest; against a real server, the access log and gunicorn's own lines in that format,
and clients that try TLS first on a plain port are closed at once without a warning.
"""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import webtest

from docker_registry_wsgi import Registry, logs
from docker_registry_wsgi.events import REQUEST_ID_KEY
from docker_registry_wsgi.storage import MemoryStorage
from tests.handlers import RegistryClient, sha256
from tests.support.servers import RegistryServer

LAYER = b"layer bytes"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every logger's lines, as ``serve`` writes them (text format), in a buffer."""
    stream = io.StringIO()
    logs.clear()  # this thread serves no request (a test before may have left one entered)
    handler = logs.configure("debug", "text", stream)
    yield stream
    logging.getLogger().removeHandler(handler)


def _record(message: str, **fields: Any) -> logging.LogRecord:
    record = logging.LogRecord("docker_registry_wsgi", logging.WARNING, __file__, 1, message, (), None)
    for name, value in fields.items():
        setattr(record, name, value)
    return record


# -- the formats --------------------------------------------------------------------------------


def test_text_lines_carry_the_request_fields_that_apply() -> None:
    record = _record("storage slow", request_id="r-1", repository="lib/app", upload=None, digest="sha256:ab")
    line = logs.TextFormatter().format(record)
    assert line.endswith(f" [{record.process}] WARNING docker_registry_wsgi: storage slow request_id=r-1 "
                         "repository=lib/app digest=sha256:ab")
    assert line[:24].endswith("Z") and line[10] == "T"  # 2026-05-04T12:00:00.123Z


def test_text_lines_quote_what_could_forge_a_line() -> None:
    record = _record("x", request_id=None, repository="a b\nINFO forged", upload=None, digest=None)
    assert logs.TextFormatter().format(record).endswith(' repository="a b\\nINFO forged"')


def test_json_lines_are_one_object_each() -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed", request_id="r-2", upload="u-1")
        record.exc_info = sys.exc_info()
    doc = json.loads(logs.JsonFormatter().format(record))
    assert (doc["level"], doc["logger"], doc["message"], doc["request_id"], doc["upload"], doc["pid"]) == (
        "warning", "docker_registry_wsgi", "failed", "r-2", "u-1", record.process)
    assert "RuntimeError: boom" in doc["exception"] and "digest" not in doc
    with pytest.raises(ValueError, match="unknown log format"):
        logs.formatter("xml")


# -- the request id in a library user's site ----------------------------------------------------


def test_the_id_is_honoured_or_made_and_returned() -> None:
    app = webtest.TestApp(Registry(MemoryStorage()))
    assert app.get("/v2/", headers={"X-Request-ID": "ci-build-42"}).headers["X-Request-ID"] == "ci-build-42"
    made = app.get("/v2/").headers["X-Request-ID"]
    assert str(uuid.UUID(made)) == made
    # An id that is not safe to echo and log is replaced (events.parse_request_id).
    replaced = app.get("/v2/", headers={"X-Request-ID": "x" * 300}).headers["X-Request-ID"]
    assert str(uuid.UUID(replaced)) == replaced
    error = app.get("/v2/lib/app/manifests/nope", headers={"X-Request-ID": "r-404"}, status=404)
    assert error.headers["X-Request-ID"] == "r-404"  # error responses carry it too


def test_every_line_of_a_request_carries_its_id_repository_and_digest(captured: io.StringIO) -> None:
    """A subscriber that fails (a site's bug) is logged by the registry during the push: the line
    says which request, repository and digest, and the line after the request does not."""
    registry = Registry(MemoryStorage())

    def broken(event: Any) -> None:
        raise RuntimeError("the site's hook failed")

    registry.events.subscribe(broken, actions=("push",))
    app = webtest.TestApp(registry)
    digest = sha256(LAYER)
    location = RegistryClient(app).start_upload("lib/app").headers["Location"]
    app.put(f"{location}?digest={digest}", LAYER, headers={"X-Request-ID": "push-1"}, status=201)
    logging.getLogger("docker_registry_wsgi").warning("after the request")
    lines = [line for line in captured.getvalue().splitlines() if "WARNING" in line or "ERROR" in line]
    failed = next(line for line in lines if "the site's hook failed" in line or "broken" in line)
    upload = location.rstrip("/").rsplit("/", 1)[1].split("?")[0]
    assert failed.endswith(f"request_id=push-1 repository=lib/app upload={upload} digest={digest}")
    assert lines[-1].endswith("docker_registry_wsgi: after the request")
    assert logs.current() is None


def test_an_outer_layer_keeps_the_annotations_for_the_access_line() -> None:
    """In the server the outermost middleware enters the request; the registry adds to that
    record (read by the access log after the response), and the worker clears it."""
    seen: dict[str, Any] = {}

    def outer(environ: dict[str, Any], start_response: Any) -> Any:
        body = logs.RequestIdMiddleware(Registry(MemoryStorage()))(environ, start_response)
        seen["log"] = logs.current()
        return body

    response = webtest.TestApp(outer).get(f"/v2/lib/app/blobs/{sha256(LAYER)}", status=404)
    assert seen["log"].repository == "lib/app" and seen["log"].digest == sha256(LAYER)
    assert response.headers["X-Request-ID"] == seen["log"].request_id
    logs.clear()
    assert logs.current() is None


# -- a real server -------------------------------------------------------------------------------


@pytest.fixture
def json_server(tmp_path: Path) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path / "data", log_path=tmp_path / "registry.log", show_log_on_stop=False,
                            extra_args=["--workers", "1", "--access-log", "--log-format", "json"])
    with server:
        yield server


def _json_lines(server: RegistryServer) -> list[dict[str, Any]]:
    out = []
    for line in server.log_text().splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
        else:
            assert line.startswith("$ "), f"a line not in the JSON format: {line!r}"
    return out


def test_a_real_server_logs_every_line_as_json_with_request_ids(json_server: RegistryServer) -> None:
    digest = sha256(LAYER)
    started = requests.post(f"{json_server.url}/v2/lib/app/blobs/uploads/", headers={"X-Request-ID": "up-1"},
                            timeout=10)
    location = started.headers["Location"]
    upload = location.rstrip("/").rsplit("/", 1)[1]
    done = requests.put(location, params={"digest": digest}, data=LAYER,
                        headers={"X-Request-ID": "up-2"}, timeout=10)
    assert (started.headers["X-Request-ID"], done.status_code, done.headers["X-Request-ID"]) == ("up-1", 201, "up-2")
    assert requests.get(f"{json_server.url}/livez", timeout=10).headers["X-Request-ID"]
    json_server.stop(show_log=False)  # flushes every line
    lines = _json_lines(json_server)
    assert any(line["logger"] == "gunicorn.error" and line["message"].startswith("Starting gunicorn") for line in lines)
    assert any(line["logger"] == "docker_registry_wsgi.server" and "listening on http://127.0.0.1:" in line["message"]
               for line in lines)
    access = [line for line in lines if line["logger"] == "gunicorn.access"]
    put = next(line for line in access if line["method"] == "PUT")
    assert (put["request_id"], put["status"], put["repository"], put["upload"], put["digest"]) == (
        "up-2", 201, "lib/app", upload, digest)
    assert put["path"].startswith(f"/v2/lib/app/blobs/uploads/{upload}?digest=")
    post = next(line for line in access if line["method"] == "POST")
    assert (post["request_id"], post["status"], post["remote_addr"]) == ("up-1", 202, "127.0.0.1")
    assert next(line for line in access if line["path"] == "/livez")["request_id"]


def test_a_client_trying_tls_first_is_closed_at_once_without_a_warning(tmp_path: Path) -> None:
    """skopeo tries TLS first, then plain HTTP: the server closes the TLS attempt at once (the
    client falls back now, not after its handshake timeout), logged at debug level only; bytes
    gunicorn cannot parse get 400 and a debug line, not a warning."""
    server = RegistryServer(tmp_path / "data", log_path=tmp_path / "registry.log", show_log_on_stop=False,
                            extra_args=["--workers", "1", "--log-level", "debug"])
    hello = bytes.fromhex("16030100c4010000c00303") + bytes(32) + b"\n\n"
    with server:
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(hello)
            assert sock.recv(1024) == b""  # closed, nothing answered
        with socket.create_connection((server.host, server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\nHost: x\n\n")  # bare LFs
            assert sock.recv(1024).startswith(b"HTTP/1.1 400 ")
    text = server.log_text()
    assert "] DEBUG gunicorn.error: closing ('127.0.0.1'," in text and "a TLS handshake on a plain HTTP port" in text
    assert "] DEBUG gunicorn.error: Invalid request from ip=127.0.0.1" in text
    assert " WARNING " not in text
