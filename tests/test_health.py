"""Health checks (docs/operations.rst "Health"): ``/livez`` answers while the process does,
``/readyz`` only when storage does a real round trip in time, against real stores: a folder
remounted read-only, a SeaweedFS with wrong credentials, stopped with SIGSTOP, and killed.
"""

from __future__ import annotations

import argparse
import base64
import logging
import os
import signal
import subprocess
import threading
from pathlib import Path

import pytest
import webtest
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.health import (
    DEFAULT_TIMEOUT,
    PROBE_PREFIX,
    HealthApp,
    StorageProbe,
    add_arguments,
    check_storage,
    startup_failure,
)
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage
from docker_registry_wsgi.storage.s3 import S3Storage
from tests.handlers import assert_error
from tests.support.seaweedfs import SeaweedFS, running_seaweedfs

PROBE_THREAD = "registry-readiness-probe"


def _options(*argv: str, env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, env or {})
    return parser.parse_args(list(argv))


def _remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True, capture_output=True)


def _probe_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == PROBE_THREAD)


# -- the endpoints --------------------------------------------------------------------------------


def test_livez_and_readyz_answer_ok(storage: Storage) -> None:
    app = webtest.TestApp(HealthApp(storage))
    for path in ("/livez", "/readyz"):
        response = app.get(path, status=200)
        assert response.body == b"ok\n"
        assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
        assert response.headers["Cache-Control"] == "no-store"
        head = app.head(path, status=200)
        assert head.body == b"" and head.headers["Content-Length"] == "3"
    # The probe object is gone again: the round trip deletes what it wrote.
    assert list(storage.list(PROBE_PREFIX)) == []


def test_other_methods_and_paths(storage: Storage) -> None:
    app = webtest.TestApp(HealthApp(storage))
    refused = app.post("/readyz", status=405)
    assert_error(refused, 405, "UNSUPPORTED")
    assert refused.headers["Allow"] == "GET, HEAD"
    assert_error(app.get("/healthz", status=404), 404, "UNSUPPORTED")
    assert_error(app.get("/readyz/", status=404), 404, "UNSUPPORTED")


def test_mounted_below_a_prefix_of_the_site() -> None:
    """Library users mount it where their site wants it: paths are relative to the mount."""
    site = DispatcherMiddleware(HealthApp(MemoryStorage()), {"/ops/health": HealthApp(MemoryStorage())})
    app = webtest.TestApp(site)
    assert app.get("/ops/health/readyz").body == b"ok\n"
    assert app.get("/ops/health/livez").body == b"ok\n"
    assert app.get("/livez").body == b"ok\n"


def test_never_behind_the_registry_auth() -> None:
    storage = MemoryStorage()
    auth = BasicAuth(lambda user, password: None)
    app = webtest.TestApp(HealthApp(storage, fallback=Registry(storage, auth=auth)))
    assert app.get("/readyz").body == b"ok\n"
    assert app.get("/livez").body == b"ok\n"
    assert_error(app.get("/v2/", status=401), 401, "UNAUTHORIZED")
    credentials = base64.b64encode(b"someone:wrong").decode()
    assert app.get("/readyz", headers={"Authorization": f"Basic {credentials}"}).body == b"ok\n"


def test_options_and_their_variables() -> None:
    assert (_options().start_degraded, _options().readiness_timeout) == (False, DEFAULT_TIMEOUT)
    configured = _options(env={"REGISTRY_START_DEGRADED": "true", "REGISTRY_READINESS_TIMEOUT": "2.5"})
    assert (configured.start_degraded, configured.readiness_timeout) == (True, 2.5)
    assert _options("--start-degraded", "--readiness-timeout", "9").readiness_timeout == 9.0
    with pytest.raises(ValueError, match="positive"):
        StorageProbe(MemoryStorage(), timeout=0)


# -- a read-only folder ---------------------------------------------------------------------------


def test_readyz_on_a_read_only_folder(small_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A disk remounted read-only (as the kernel does after I/O errors): 503 and why; 200 again
    once it is writable. ``serve`` refuses to start on it unless told to start degraded."""
    storage = FilesystemStorage(small_disk / "registry")
    app = webtest.TestApp(HealthApp(storage, timeout=10))
    assert app.get("/readyz").body == b"ok\n"
    _remount(small_disk, "ro")
    try:
        response = app.get("/readyz", status=503)
        reason = response.text
        assert reason.startswith(f"storage: cannot write {PROBE_PREFIX}probe-")
        assert reason.endswith(": StorageUnavailable: the registry's storage is read-only\n")
        assert app.get("/livez").body == b"ok\n"
        failure = startup_failure(_options("--readiness-timeout", "10"), lambda: storage)
        assert failure is not None and failure.startswith("the storage check failed: cannot write")
        assert failure.endswith("(--start-degraded starts anyway)")
        with caplog.at_level(logging.WARNING, logger="docker_registry_wsgi"):
            assert startup_failure(_options("--start-degraded"), lambda: storage) is None
        assert "starting degraded: the storage check failed: cannot write" in caplog.text
    finally:
        _remount(small_disk, "rw")
    assert app.get("/readyz").body == b"ok\n"
    assert startup_failure(_options(), lambda: storage) is None


def test_a_storage_that_cannot_open_fails_the_start_check(small_disk: Path) -> None:
    """On a read-only disk the storage opens but cannot write: the start check's round trip says
    so in one line; configuration errors are not storage failures."""
    _remount(small_disk, "ro")
    try:
        failure = startup_failure(_options(), lambda: FilesystemStorage(small_disk / "new"))
    finally:
        _remount(small_disk, "rw")
    assert failure is not None
    assert failure.startswith("the storage check failed:") and "read-only" in failure
    assert "\n" not in failure

    def misconfigured() -> Storage:
        raise ValueError("--storage s3 needs --s3-bucket")

    with pytest.raises(ValueError, match="s3-bucket"):
        startup_failure(_options(), misconfigured)


# -- a real S3 store ------------------------------------------------------------------------------


def _s3(server: SeaweedFS, bucket: str, **overrides: object) -> S3Storage:
    settings: dict[str, object] = {
        "endpoint_url": server.endpoint_url, "region": server.region,
        "access_key": server.access_key, "secret_key": server.secret_key,
    }
    settings.update(overrides)
    return S3Storage(bucket, **settings)  # type: ignore[arg-type]


@pytest.mark.s3
def test_readyz_with_wrong_s3_credentials(seaweedfs: SeaweedFS) -> None:
    bucket = seaweedfs.create_bucket()
    assert check_storage(_s3(seaweedfs, bucket)) is None
    wrong = HealthApp(_s3(seaweedfs, bucket, secret_key="not-the-secret"))
    reason = webtest.TestApp(wrong).get("/readyz", status=503).text
    assert reason.startswith(f"storage: cannot write {PROBE_PREFIX}probe-")
    assert "ClientError" in reason and "SignatureDoesNotMatch" in reason, reason
    unknown = _s3(seaweedfs, bucket, access_key="nobody")
    assert "InvalidAccessKeyId" in (check_storage(unknown) or ""), check_storage(unknown)


@pytest.mark.s3
def test_readyz_with_a_stuck_then_stopped_seaweedfs(seaweedfs: SeaweedFS, tmp_path: Path) -> None:
    """A SeaweedFS of this test's own: SIGSTOPped it accepts connections and never answers, so
    readiness answers at its deadline, with one probe thread however often it is asked; killed,
    it refuses connections, and readiness says so."""
    with running_seaweedfs(tmp_path / "weed") as server:
        assert server.process is not None
        bucket = server.create_bucket()
        storage = _s3(server, bucket)
        probe = StorageProbe(storage, timeout=1.0)
        app = webtest.TestApp(HealthApp(storage, timeout=1.0))
        assert check_storage(storage, timeout=60) is None  # a cold client and store are slow
        for thread in threading.enumerate():  # finished round trips: their threads end now
            if thread.name == PROBE_THREAD:
                thread.join(30)
        assert _probe_threads() == 0
        os.killpg(server.process.pid, signal.SIGSTOP)
        try:
            first = probe.check()
            assert first is not None and first.startswith("storage did not answer a round trip within 1 s")
            second = probe.check()  # joins the stuck round trip instead of starting another
            assert second is not None and second.startswith("storage did not answer a round trip within 1 s")
            assert _probe_threads() == 1
            response = app.get("/readyz", status=503)  # another probe, another thread: two in all
            assert response.text.startswith("storage: storage did not answer a round trip within 1 s")
            assert _probe_threads() == 2
            assert app.get("/livez").body == b"ok\n"
        finally:
            os.killpg(server.process.pid, signal.SIGCONT)
        assert check_storage(storage, timeout=60) is None

        server.stop()
        from botocore.config import Config
        import boto3

        # One attempt, no retries: the reason comes at once instead of at the deadline.
        client = boto3.session.Session().client(
            "s3", endpoint_url=server.endpoint_url, region_name=server.region,
            aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key,
            config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5))
        stopped = webtest.TestApp(HealthApp(S3Storage(bucket, client=client), timeout=30))
        reason = stopped.get("/readyz", status=503).text
        assert reason.startswith(f"storage: cannot write {PROBE_PREFIX}probe-")
        assert "EndpointConnectionError: Could not connect to the endpoint URL" in reason
        # With the registry's own client (retries and all) the deadline answers first, or the error.
        reason = webtest.TestApp(HealthApp(storage, timeout=1.0)).get("/readyz", status=503).text
        assert ("did not answer a round trip within 1 s" in reason
                or "EndpointConnectionError" in reason), reason
