"""The standalone server (docker_registry_wsgi.server): its slow-client options, and that slow
clients do not deny service: with 200 slow connections open against the real server, ordinary
requests are still answered and a slow upload that sends all its bytes completes.

No time is asserted: every socket has a timeout of a few seconds as a failure bound; how fast
the answers come is measured by ``bench/slowloris.py`` (docs/deploy.rst).
"""

from __future__ import annotations

import http.client
import io
import json
import math
import os
import re
import socket
import ssl
import subprocess
import sys
from contextlib import redirect_stderr
from pathlib import Path
from typing import Callable, Iterator

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi import __version__
from docker_registry_wsgi.cli import main, parse
from docker_registry_wsgi.options import OptionErrors
from docker_registry_wsgi.worker import ThreadWorker
from tests.support.clients import Skopeo, requests_in
from tests.support.oci_images import OCI_MANIFEST, build_multiplatform_image, canonical_json, sha256_digest
from tests.support.rawhttp import connect, exchange, read_response, request, upload_session
from tests.support.servers import RegistryServer, ServerProcess, free_port, wait_for_http
from tests.support.tools import require_tool

SLOW_OPTIONS = ("REGISTRY_MAX_CONNECTIONS", "REGISTRY_HEADER_TIMEOUT", "REGISTRY_BODY_TIMEOUT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the REGISTRY_* variables of whoever runs them."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


# -- options ------------------------------------------------------------------------------------


def test_slow_client_option_defaults() -> None:
    args = parse(["serve"])
    assert (args.threads, args.max_connections, args.header_timeout, args.body_timeout) == (8, 1000, 20.0, 60.0)


def test_slow_client_options_read_the_environment() -> None:
    env = dict(zip(SLOW_OPTIONS, ("50", "2.5", "0")))
    args = parse(["serve"], env)
    assert (args.max_connections, args.header_timeout, args.body_timeout) == (50, 2.5, 0.0)
    args = parse(["serve", "--max-connections", "7", "--header-timeout", "3", "--body-timeout", "4"], env)
    assert (args.max_connections, args.header_timeout, args.body_timeout) == (7, 3.0, 4.0)


@pytest.mark.parametrize("argv", [
    ["--max-connections", "0"], ["--max-connections", "many"], ["--header-timeout", "0"],
    ["--header-timeout", "-1"], ["--header-timeout", "nan"], ["--body-timeout", "-1"],
    ["--body-timeout", "inf"],
])
def test_bad_slow_client_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """One line naming the flag and its value, exit status 2, no usage text, no traceback."""
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docker-registry-wsgi: {argv[0]} {argv[1]}: expected a ")
    assert err.count("\n") == 1


def _parsed(option: str, text: str) -> object:
    """The value ``serve`` parses from ``option text``, or None if it refuses it (exit 2)."""
    with redirect_stderr(io.StringIO()):
        try:
            args = parse(["serve", option, text])
        except SystemExit as exc:  # argparse: text that looks like another option
            assert exc.code == 2
            return None
        except OptionErrors:
            return None
    return getattr(args, option[2:].replace("-", "_"))


#: What the reader takes for numbers (docs/operations.rst "Configuration"): ASCII decimals, no
#: ``1_000``, no other scripts' digits, no ``nan`` or ``inf``, which Python's int() and float() take.
WHOLE = re.compile(r"\s*[+-]?[0-9]+\s*")
DECIMAL = re.compile(r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def _number(convert: Callable[[str], float], text: str) -> float | None:
    if not (WHOLE if convert is int else DECIMAL).fullmatch(text):
        return None
    return convert(text)


@given(st.one_of(st.text(max_size=8), st.integers().map(str)))
def test_max_connections_is_a_whole_number_of_at_least_1(text: str) -> None:
    value = _number(int, text)
    assert _parsed("--max-connections", text) == (value if value is not None and value >= 1 else None)


@given(st.one_of(st.text(max_size=8), st.floats().map(str), st.integers().map(str)))
def test_timeouts_are_finite_seconds(text: str) -> None:
    """--header-timeout must be above 0; --body-timeout may also be 0 (no limit)."""
    value = _number(float, text)
    header = body = None
    if value is not None and math.isfinite(value):
        header = value if value > 0 else None
        body = value if value >= 0 else None
    assert (_parsed("--header-timeout", text), _parsed("--body-timeout", text)) == (header, body)


def test_bad_environment_value_exits_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("REGISTRY_BODY_TIMEOUT", "soon")
    assert main(["serve"]) == 2
    assert capsys.readouterr().err == ("docker-registry-wsgi: REGISTRY_BODY_TIMEOUT='soon': expected a "
                                       "number of seconds, at least 0\n")


def test_configured_worker_carries_the_timeouts() -> None:
    worker = ThreadWorker.configured(header_timeout=3.0, body_timeout=0.0)
    assert issubclass(worker, ThreadWorker)
    assert (worker.header_timeout, worker.body_timeout) == (3.0, 0.0)
    assert (ThreadWorker.header_timeout, ThreadWorker.body_timeout) == (20.0, 60.0)


# -- 200 slow connections against the real server ---------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The standalone server with its defaults (a worker per core, 8 threads), except timeouts
    long enough that no slow connection is closed while a test runs."""
    base = tmp_path_factory.mktemp("server")
    srv = RegistryServer(base / "data", log_path=base / "registry.log",
                         extra_args=["--header-timeout", "600", "--body-timeout", "600"])
    with srv:
        yield srv


def _push_image(hostport: str, repository: str) -> str:
    """A blob, and a manifest tagged ``latest`` that uses it; return the blob's digest."""
    config = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
    digests = []
    for data in (config, b"layer bytes " * 100):
        digest = sha256_digest(data)
        location = upload_session(hostport, repository)
        assert exchange(hostport, "PUT", f"{location}?digest={digest}", data).status == 201
        digests.append((digest, len(data)))
    manifest = canonical_json({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digests[0][0], "size": digests[0][1]},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digests[1][0], "size": digests[1][1]}],
    })
    response = exchange(hostport, "PUT", f"/v2/{repository}/manifests/latest", manifest,
                        {"Content-Type": OCI_MANIFEST})
    assert response.status == 201, response
    return digests[1][0]


def test_200_slow_connections_leave_others_answered(server: RegistryServer) -> None:
    """100 clients trickling a head and 100 stopped in the middle of a PATCH body: 20 ordinary
    requests (GET /v2/, HEAD of a blob, GET of a manifest) on new connections are each
    answered, and a slow upload that then sends the rest of its body gets 202 (OCI spec,
    "Pushing a blob in chunks")."""
    hostport = server.hostport
    blob = _push_image(hostport, "server/probe")
    locations = [upload_session(hostport, f"server/slow-{i}") for i in range(100)]
    body = b"s" * 1000
    heads: list[socket.socket] = []
    bodies: list[socket.socket] = []
    try:
        for _ in range(100):
            sock = connect(hostport, timeout=5)
            sock.sendall(b"GET /v2/ HTTP/1.1\r\nHost: slow\r\nX-Slow: 1\r\n")
            heads.append(sock)
        for location in locations:
            sock = connect(hostport, timeout=5)
            sock.sendall(request("PATCH", location, headers={"Content-Length": str(len(body))}) + body[:10])
            bodies.append(sock)
        probes = [("GET", "/v2/", {}), ("HEAD", f"/v2/server/probe/blobs/{blob}", {}),
                  ("GET", "/v2/server/probe/manifests/latest", {"Accept": OCI_MANIFEST})]
        for i in range(20):
            method, path, headers = probes[i % len(probes)]
            with connect(hostport, timeout=5) as sock:
                sock.sendall(request(method, path, headers=headers))
                response = read_response(sock, method)
            assert response.status == 200, (method, path, response)
            if path.endswith("latest"):
                assert json.loads(response.body)["layers"][0]["digest"] == blob
        bodies[0].sendall(body[10:])
        finished = read_response(bodies[0])
        assert finished.status == 202 and finished.headers["range"] == f"0-{len(body) - 1}"
    finally:
        for sock in heads + bodies:
            sock.close()
    assert "Traceback" not in server.log_text()


def test_serve_runs_this_packages_worker(server: RegistryServer) -> None:
    """serve runs this package's worker, not gunicorn's plain gthread."""
    assert "Using worker: ThreadWorker" in server.log_text()


def test_ranges_and_conditionals_through_gunicorn(server: RegistryServer) -> None:
    """Filesystem blobs leave gunicorn by sendfile from the file's position for Content-Length
    bytes: ranges (RFC 9110 14.1.2, unit in any case), a failed If-Range (13.1.5) and a 304
    (13.1.2) come out byte for byte, one after another on one keep-alive connection (a byte too
    many or too few would break the next response)."""
    hostport = server.hostport
    blob = bytes((i * 13) % 256 for i in range((1 << 20) + 777))  # more than one 1 MiB read
    digest = sha256_digest(blob)
    location = upload_session(hostport, "server/ranges")
    assert exchange(hostport, "PUT", f"{location}?digest={digest}", blob).status == 201
    path = f"/v2/server/ranges/blobs/{digest}"
    other = '"sha256:' + "0" * 64 + '"'
    cases = [
        ({"Range": "Bytes=0-9"}, 206, blob[:10]),
        ({"Range": f"bytes={(1 << 20) - 5}-{(1 << 20) + 5}"}, 206, blob[(1 << 20) - 5 : (1 << 20) + 6]),
        ({"Range": "bytes=-777"}, 206, blob[-777:]),
        ({"Range": "bytes=0-9", "If-Range": f'"{digest}"'}, 206, blob[:10]),
        ({"Range": "bytes=0-9", "If-Range": other}, 200, blob),
        ({"Range": "bytes=0-1,5-9"}, 200, blob),
        ({"If-None-Match": f'"{digest}"'}, 304, b""),
        ({"Range": f"bytes={len(blob)}-"}, 416, None),
        ({}, 200, blob),
    ]
    with connect(hostport) as sock:
        for headers, status, body in cases:
            sock.sendall(request("GET", path, headers=headers))
            response = read_response(sock)
            assert response.status == status, (headers, response.status)
            if body is not None:
                assert response.body == body, headers
            assert response.headers.get("etag") == f'"{digest}"' or status == 416
    assert "Traceback" not in server.log_text()


# -- TLS, IPv6, gunicorn's own settings, and what serve says at start -----------------------------


def _serve(tmp_path: Path, *args: str, host: str = "127.0.0.1", env: dict[str, str] | None = None,
           ready_path: str | None = "/v2/", port: int | None = None, probe: str = "127.0.0.1") -> ServerProcess:
    """``serve --host host`` on a free port (or ``port``) with ``args``; ready when ``probe``
    answers on it (HTTP on ``ready_path``, or an open port)."""
    return ServerProcess([sys.executable, "-m", "docker_registry_wsgi", "serve", "--host", host, "--port", "{port}",
                          "--root", str(tmp_path / "data"), "--workers", "1", *args],
                         host=probe, port=port, env=env, log_path=tmp_path / "registry.log",
                         ready_path=ready_path, show_log_on_stop=False)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and localhost, and its key, made by openssl."""
    openssl = require_tool("openssl", "apt-get install -y openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=registry test",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_with_a_self_signed_certificate(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    """``--tls-cert``/``--tls-key``: HTTPS that a client trusting the certificate verifies (Python's
    ssl with the certificate as its CA, and curl), a push and pull by skopeo over it, and the
    start line says https."""
    cert, key = certificate
    with _serve(tmp_path, "--tls-cert", str(cert), "--tls-key", str(key), "--access-log",
                ready_path=None) as server:
        context = ssl.create_default_context(cafile=str(cert))
        connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)
        connection.request("GET", "/v2/")
        response = connection.getresponse()
        assert (response.status, response.getheader("Docker-Distribution-API-Version")) == (200, "registry/2.0")
        assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
        connection.close()
        curl = require_tool("curl", "apt-get install -y curl")
        out = subprocess.run([curl, "-sS", "--cacert", str(cert), "-o", "/dev/null", "-w", "%{http_code}",
                              f"https://127.0.0.1:{server.port}/v2/"], capture_output=True, text=True, timeout=60)
        assert out.stdout == "200", out.stderr
        refused = subprocess.run([curl, "-sS", "-o", "/dev/null", f"https://127.0.0.1:{server.port}/v2/"],
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode != 0  # without the certificate as CA, verification fails
        skopeo = Skopeo(require_tool("skopeo", "apt-get install -y skopeo"), server.hostport)
        layout = build_multiplatform_image(tmp_path / "layout", tag="v1")
        skopeo.copy(f"oci:{layout.path}:v1", skopeo.docker("tls/app", "v1"), "--all")
        assert skopeo.list_tags("tls/app") == ["v1"]
        sent = requests_in("\n".join(skopeo.transcript))
        assert sent and all(" https://" in line for line in sent)
    text = server.log_text()
    assert f"listening on https://127.0.0.1:{server.port} " in text
    assert '"PUT /v2/tls/app/manifests/v1 HTTP/1.1" 201' in text and "Traceback" not in text


def test_tls_files_that_do_not_make_a_server_exit_2(tmp_path: Path, certificate: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = certificate
    assert main(["serve", "--tls-cert", str(key), "--tls-key", str(cert), "--storage", "memory"]) == 2
    assert capsys.readouterr().err.startswith(f"docker-registry-wsgi: --tls-cert {key} and --tls-key {cert}: "
                                              "not a certificate and its private key (")
    assert main(["serve", "--tls-key", str(key), "--storage", "memory"]) == 2
    assert capsys.readouterr().err == "docker-registry-wsgi: --tls-key needs --tls-cert\n"


def test_host_double_colon_listens_on_ipv6(tmp_path: Path) -> None:
    """``--host ::`` binds ``[::]:port`` (every IPv6 address), not the string ``:::port``."""
    with _serve(tmp_path, host="::", port=free_port(), probe="::1") as server:
        assert wait_for_http("::1", server.port, "/v2/") == 200
    assert f"listening on http://[::]:{server.port} " in server.log_text()


def test_gunicorn_settings_from_the_file_and_gunicorn_cmd_args(tmp_path: Path) -> None:
    """``[gunicorn]`` in the configuration file, then ``GUNICORN_CMD_ARGS`` over it, reach gunicorn:
    its request line limit (414) and header count limit (431) apply."""
    config = tmp_path / "registry.toml"
    config.write_text("[gunicorn]\nlimit_request_line = 4000\nlimit_request_fields = 10\n")
    with _serve(tmp_path, "--config", str(config), env={"GUNICORN_CMD_ARGS": "--limit-request-line 100"}) as server:
        long_line = exchange(server.hostport, "GET", "/v2/" + "a" * 200)
        assert long_line.status == 414
        many = exchange(server.hostport, "GET", "/v2/", headers={f"X-H{i}": "1" for i in range(12)})
        assert many.status == 431
        assert exchange(server.hostport, "GET", "/v2/").status == 200


def test_gunicorn_cmd_args_cannot_take_what_serve_decides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--storage", "memory"], {"GUNICORN_CMD_ARGS": "--workers 4"}) == 2
    assert capsys.readouterr().err == "docker-registry-wsgi: GUNICORN_CMD_ARGS workers: set by serve; use --workers\n"
    assert main(["serve", "--storage", "memory"], {"GUNICORN_CMD_ARGS": "myapp:app"}) == 2
    assert capsys.readouterr().err == ("docker-registry-wsgi: GUNICORN_CMD_ARGS: takes settings only, "
                                       "not 'myapp:app'\n")


def test_serve_says_where_it_listens_and_what_it_serves(tmp_path: Path) -> None:
    users = tmp_path / "users.htpasswd"
    users.write_text("")
    metrics_port = free_port()
    with _serve(tmp_path, "--auth", "htpasswd", "--htpasswd", str(users), "--read-only",
                "--metrics-bind", f"127.0.0.1:{metrics_port}", "--webhook-url", "http://127.0.0.1:9/a",
                "--webhook-url", "http://127.0.0.1:9/b", "--gc-interval", "24", "--gc-grace", "48",
                "--proxy", "hub=http://127.0.0.1:9,budget=1GiB") as server:
        pass
    lines = [line.split(" INFO docker_registry_wsgi.server: ", 1)[1] for line in server.log_text().splitlines()
             if " INFO docker_registry_wsgi.server: " in line]
    assert lines == [
        f"docker-registry-wsgi {__version__} listening on http://127.0.0.1:{server.port}, "
        f"http://127.0.0.1:{metrics_port} (1 worker(s), 8 threads each)",
        f"storage: filesystem {tmp_path / 'data'}",
        f"auth: htpasswd (users in {users})",
        "mode: read-only: pushes and deletes refused",
        "mirrors: hub/ -> http://127.0.0.1:9 (ttl 5m, budget 1 GiB), read-only",
        f"health: /livez, /readyz; metrics: /metrics only on 127.0.0.1:{metrics_port}",
        "webhooks: 2 endpoint(s) (http://127.0.0.1:9/a, http://127.0.0.1:9/b)",
        "garbage collection: every 24 h, grace 48 h, mirrors pruned to their budgets",
    ]
