"""The registry under WSGI servers other than the standalone gunicorn one (docs/servers.rst).

Each server runs for real, on a free loopback port, and gets raw-socket requests: a chunked PATCH
(what skopeo, docker and containerd send), a broken chunked body, ``gzip, chunked``. A server that
decodes chunked bodies and says so (``wsgi.input_terminated``: werkzeug's dev server, waitress)
serves them; one that does not (wsgiref, which Django's ``runserver`` uses; uWSGI, with or without
``--http-chunked-input``) gets 411 instead of a 202 that stored nothing. RFC 9112 sections 6.1
and 7.1, RFC 9110 section 15.5.12; oci-distribution-spec.md "Pushing a blob in chunks".
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.raw_http import Response, connect, exchange, request as raw_request, start_session
from tests.support.servers import ServerProcess
from tests.support.tools import require_module, require_tool

#: Serves ``Registry(FilesystemStorage(root))`` with the server named on the command line.
SERVE = '''
import sys
from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import FilesystemStorage

application = Registry(FilesystemStorage(sys.argv[3] if len(sys.argv) > 3 else "{root}"))

if __name__ == "__main__":
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "wsgiref":
        from wsgiref.simple_server import make_server
        make_server("127.0.0.1", port, application).serve_forever()
    elif kind == "werkzeug":
        from werkzeug.serving import run_simple
        run_simple("127.0.0.1", port, application, threaded=True)
    elif kind == "waitress":
        import waitress
        waitress.serve(application, host="127.0.0.1", port=port)
'''

CHUNKED = {"Transfer-Encoding": "chunked"}
HELLO = b"5\r\nhello\r\n0\r\n\r\n"
SENT = b"0123456789"


def _serve(tmp_path: Path, command: list[str]) -> Iterator[ServerProcess]:
    script = tmp_path / "serve.py"
    script.write_text(SERVE.replace("{root}", str(tmp_path / "data")))
    command = [part.replace("{script}", str(script)) for part in command]
    with ServerProcess(command, ready_path="/v2/", log_path=tmp_path / "server.log",
                       env={"PYTHONPATH": str(Path(__file__).resolve().parent.parent)}) as server:
        start = len(server.log_text())
        yield server
        added = server.log_text()[start:]
        assert "Traceback" not in added, added


@pytest.fixture
def wsgiref_server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path, [sys.executable, "{script}", "wsgiref", "{port}"])


@pytest.fixture
def werkzeug_server(tmp_path: Path) -> Iterator[ServerProcess]:
    yield from _serve(tmp_path, [sys.executable, "{script}", "werkzeug", "{port}"])


@pytest.fixture
def waitress_server(tmp_path: Path) -> Iterator[ServerProcess]:
    require_module("waitress", "pip install waitress")
    yield from _serve(tmp_path, [sys.executable, "{script}", "waitress", "{port}"])


#: uWSGI's own HTTP parser (``--http-socket``), with ``--http-chunked-input``, and its HTTP router.
UWSGI_MODES = {
    "http-socket": ["--http-socket", "127.0.0.1:{port}"],
    "http-socket-chunked-input": ["--http-socket", "127.0.0.1:{port}", "--http-chunked-input"],
    "http-router-chunked-input": ["--http", "127.0.0.1:{port}", "--http-chunked-input"],
}


@pytest.fixture(params=sorted(UWSGI_MODES))
def uwsgi_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    uwsgi = require_tool("uwsgi", "pip install pyuwsgi")
    yield from _serve(tmp_path, [uwsgi, *UWSGI_MODES[request.param], "--wsgi-file", "{script}",
                                 "--master", "--processes", "1"])


def _session(server: ServerProcess, name: str = "srv/app") -> str:
    """A session holding :data:`SENT` (offset 10); one request per connection, as wsgiref closes
    each after its response."""
    with connect(server.hostport) as sock:
        location = start_session(sock, name)
    status, _, body = exchange(server.hostport, raw_request("PATCH", location, SENT))
    assert status == 202, body
    return location


def _offset_range(server: ServerProcess, location: str) -> str:
    status, headers, _ = exchange(server.hostport, raw_request("GET", location))
    assert status == 204
    return headers["range"]


def _error(response: Response, status: int, code: str) -> dict[str, object]:
    assert response[0] == status, response
    [error] = json.loads(response[2])["errors"]
    assert error["code"] == code, error
    return error


# -- servers that do not decode chunked request bodies: 411 --------------------------------------------


def _assert_chunked_refused_with_411(server: ServerProcess) -> None:
    location = _session(server)
    _error(exchange(server.hostport, raw_request("PATCH", location, HELLO, CHUNKED)), 411, "UNSUPPORTED")
    digest = "sha256:" + hashlib.sha256(SENT + b"hello").hexdigest()
    _error(exchange(server.hostport, raw_request("PUT", f"{location}?digest={digest}", HELLO, CHUNKED)),
           411, "UNSUPPORTED")
    assert _offset_range(server, location) == f"0-{len(SENT) - 1}"
    _error(exchange(server.hostport, raw_request("POST", f"/v2/srv/app/blobs/uploads/?digest={digest}", HELLO,
                                             CHUNKED)), 411, "UNSUPPORTED")
    _error(exchange(server.hostport, raw_request("PUT", "/v2/srv/app/manifests/v1", b"2\r\n{}\r\n0\r\n\r\n",
                                             {**CHUNKED, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})),
           411, "UNSUPPORTED")
    # With a Content-Length, the same bytes go through.
    status, headers, _ = exchange(server.hostport, raw_request("PATCH", location, b"hello"))
    assert status == 202 and headers["range"] == f"0-{len(SENT) + 4}"
    status, _, body = exchange(server.hostport, raw_request("PUT", f"{location}?digest={digest}"))
    assert status == 201, body


def test_wsgiref_refuses_chunked_bodies_with_411(wsgiref_server: ServerProcess) -> None:
    """wsgiref (and Django's ``runserver``, built on it) passes chunked bodies undecoded and sets
    no ``wsgi.input_terminated``: a chunked PATCH stored 0 bytes and answered 202; now 411."""
    _assert_chunked_refused_with_411(wsgiref_server)


def test_uwsgi_refuses_chunked_bodies_with_411(uwsgi_server: ServerProcess) -> None:
    """uWSGI's ``wsgi.input`` reads a chunked body as empty in every mode (its chunked input is
    only ``uwsgi.chunked_read()``), and it sets no ``wsgi.input_terminated``: 411."""
    _assert_chunked_refused_with_411(uwsgi_server)


@pytest.mark.parametrize("server_fixture", ["wsgiref_server", "werkzeug_server", "waitress_server"])
def test_gzip_transfer_coding_is_501(request: pytest.FixtureRequest, server_fixture: str) -> None:
    """RFC 9112 6.1: ``gzip, chunked`` is 501 (from the registry, or from waitress itself), and
    the session is unchanged."""
    server: ServerProcess = request.getfixturevalue(server_fixture)
    location = _session(server)
    response = exchange(server.hostport, raw_request("PATCH", location, b"4\r\n\x1f\x8b\x08\x00\r\n0\r\n\r\n",
                                                 {"Transfer-Encoding": "gzip, chunked"}))
    assert response[0] == 501, response
    assert _offset_range(server, location) == f"0-{len(SENT) - 1}"


# -- servers that decode chunked request bodies ------------------------------------------------------


@pytest.mark.parametrize("server_fixture", ["werkzeug_server", "waitress_server"])
def test_chunked_patch_is_stored(request: pytest.FixtureRequest, server_fixture: str) -> None:
    """werkzeug's dev server and waitress decode chunked bodies and set ``wsgi.input_terminated``."""
    server: ServerProcess = request.getfixturevalue(server_fixture)
    location = _session(server)
    status, headers, body = exchange(server.hostport, raw_request("PATCH", location, HELLO, CHUNKED))
    assert status == 202 and headers["range"] == f"0-{len(SENT) + 4}", body


def test_werkzeug_broken_chunked_body_is_blob_upload_invalid(werkzeug_server: ServerProcess) -> None:
    """werkzeug's dev server raises ``OSError`` on a bad chunk header while the registry reads:
    400 BLOB_UPLOAD_INVALID, the session at its offset."""
    location = _session(werkzeug_server)
    response = exchange(werkzeug_server.hostport, raw_request("PATCH", location, b"5\r\nhello\r\nzz\r\n", CHUNKED))
    error = _error(response, 400, "BLOB_UPLOAD_INVALID")
    assert str(error["detail"]).startswith("{'reason': 'OSError")
    assert _offset_range(werkzeug_server, location) == f"0-{len(SENT) - 1}"


def test_waitress_refuses_broken_chunked_bodies_itself(waitress_server: ServerProcess) -> None:
    """waitress reads the whole chunked body before calling the application and answers a bad
    chunk with its own 400: the registry never sees it, and the session is unchanged."""
    location = _session(waitress_server)
    status, _, body = exchange(waitress_server.hostport, raw_request("PATCH", location, b"5\r\nhello\r\nzz\r\n", CHUNKED))
    assert status == 400 and b"waitress" in body
    assert _offset_range(waitress_server, location) == f"0-{len(SENT) - 1}"
