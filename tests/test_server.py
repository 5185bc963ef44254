"""The standalone server (docker_registry_wsgi.server): its slow-client options, and that slow
clients do not deny service: with 200 slow connections open against the real server, ordinary
requests are still answered and a slow upload that sends all its bytes completes.

No time is asserted: every socket has a timeout of a few seconds as a failure bound; how fast
the answers come is measured by ``bench/slowloris.py`` (docs/deploy.rst).
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
from contextlib import redirect_stderr
from typing import Callable, Iterator

import pytest
from hypothesis import given, strategies as st

from docker_registry_wsgi.cli import main, parser
from docker_registry_wsgi.worker import ThreadWorker
from tests.support.oci_images import OCI_MANIFEST, canonical_json, sha256_digest
from tests.support.rawhttp import connect, exchange, read_response, request, upload_session
from tests.support.servers import RegistryServer

SLOW_OPTIONS = ("REGISTRY_MAX_CONNECTIONS", "REGISTRY_HEADER_TIMEOUT", "REGISTRY_BODY_TIMEOUT")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests must not see the REGISTRY_* variables of whoever runs them."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


# -- options ------------------------------------------------------------------------------------


def test_slow_client_option_defaults() -> None:
    args = parser().parse_args(["serve"])
    assert (args.threads, args.max_connections, args.header_timeout, args.body_timeout) == (8, 1000, 20.0, 60.0)


def test_slow_client_options_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in zip(SLOW_OPTIONS, ("50", "2.5", "0")):
        monkeypatch.setenv(name, value)
    args = parser().parse_args(["serve"])
    assert (args.max_connections, args.header_timeout, args.body_timeout) == (50, 2.5, 0.0)
    args = parser().parse_args(["serve", "--max-connections", "7", "--header-timeout", "3",
                                "--body-timeout", "4"])
    assert (args.max_connections, args.header_timeout, args.body_timeout) == (7, 3.0, 4.0)


@pytest.mark.parametrize("argv", [
    ["--max-connections", "0"], ["--max-connections", "many"], ["--header-timeout", "0"],
    ["--header-timeout", "-1"], ["--header-timeout", "nan"], ["--body-timeout", "-1"],
    ["--body-timeout", "inf"],
])
def test_bad_slow_client_options_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", *argv])
    assert exc.value.code == 2
    assert f"argument {argv[0]}: must be" in capsys.readouterr().err


def _parsed(option: str, text: str) -> object:
    """The value ``serve`` parses from ``option text``, or None if it refuses it (exit 2)."""
    with redirect_stderr(io.StringIO()):
        try:
            args = parser().parse_args(["serve", option, text])
        except SystemExit as exc:
            assert exc.code == 2
            return None
    return getattr(args, option[2:].replace("-", "_"))


def _number(convert: Callable[[str], float], text: str) -> float | None:
    try:
        return convert(text)
    except ValueError:
        return None


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
    with pytest.raises(SystemExit) as exc:
        main(["serve"])
    assert exc.value.code == 2
    assert "argument --body-timeout: must be" in capsys.readouterr().err


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
