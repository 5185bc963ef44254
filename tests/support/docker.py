"""A private docker daemon for the end-to-end tests: the Debian ``docker.io`` package's ``dockerd``.

:class:`DockerDaemon` runs ``dockerd`` with everything of its own below one folder (data root,
pid file, log) and a short folder in /tmp (exec root, API socket, and the socket of the
containerd it starts and manages: socket paths are limited to 107 bytes) and nothing that
touches the machine's network: ``--storage-driver vfs --iptables=false --bridge=none``, so
containers run with ``--network none``. The docker CLI is pointed at it with ``DOCKER_HOST`` and
a ``DOCKER_CONFIG`` of its own (logins stay in the folder). Registries on 127.0.0.0/8 are plain
HTTP for docker by default. ``registry_mirrors`` become ``--registry-mirror`` flags.

:func:`busybox_rootfs` writes a one-file root filesystem (the static ``busybox`` of Debian's
``busybox-static``), enough for ``docker import`` and ``docker run ... busybox echo``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Sequence

from .tools import require_tool, skip_or_fail

__all__ = ["DockerDaemon", "busybox_rootfs"]

START_TIMEOUT = 60.0


def busybox_rootfs(folder: Path) -> Path:
    """A tar of a root filesystem holding ``/bin/busybox`` (static); its path."""
    busybox = require_tool("busybox", "apt-get install -y busybox-static")
    root = folder / "rootfs"
    (root / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, root / "bin" / "busybox")
    tar = folder / "rootfs.tar"
    subprocess.run(["tar", "-C", str(root), "-cf", str(tar), "."], check=True)
    return tar


class DockerDaemon:
    """``dockerd`` below ``base`` for the life of a ``with`` block; :meth:`docker` runs the CLI."""

    def __init__(self, base: Path, *, registry_mirrors: Sequence[str] = ()) -> None:
        self.base = base
        self.registry_mirrors = list(registry_mirrors)
        # Unix socket paths are limited to 107 bytes: the sockets live in a short folder of their own.
        self.run_dir = Path(tempfile.mkdtemp(prefix="dockerd-", dir="/tmp"))
        self.socket = self.run_dir / "docker.sock"
        self.log_path = base / "dockerd.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.transcript: list[str] = []

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_CONFIG": str(self.base / "config")}

    def start(self) -> "DockerDaemon":
        dockerd = require_tool("dockerd", "apt-get install -y docker.io")
        require_tool("docker", "apt-get install -y docker.io")
        if os.geteuid() != 0:
            skip_or_fail("dockerd needs root")
        self.base.mkdir(parents=True, exist_ok=True)
        command = [dockerd, "--storage-driver", "vfs", "--iptables=false", "--ip-masq=false", "--bridge=none",
                   "--data-root", str(self.base / "data"), "--exec-root", str(self.run_dir / "exec"),
                   "--pidfile", str(self.base / "docker.pid"), "--host", f"unix://{self.socket}"]
        for mirror in self.registry_mirrors:
            command += ["--registry-mirror", mirror]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self.stop()  # unmounts what it mounted before dying
                raise RuntimeError(f"dockerd exited with {code}:\n{self.log_tail()}")
            if self.socket.exists() and self.docker("version", check=False).returncode == 0:
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"dockerd did not answer within {START_TIMEOUT:.0f}s:\n{self.log_tail()}")
            time.sleep(0.2)

    def docker(self, *args: str, check: bool = True, input: str | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``docker <args>`` against this daemon; raise ``AssertionError`` on failure if ``check``."""
        result = subprocess.run(["docker", *args], capture_output=True, text=True, env=self.env,
                                input=input, timeout=timeout)
        self.transcript.append(f"$ docker {' '.join(args)}\n[exit {result.returncode}]\n"
                               f"{result.stdout[-2000:]}{result.stderr[-4000:]}")
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}:\n{result.stderr[-4000:]}\n"
                                 f"--- dockerd log ---\n{self.log_tail()}")
        return result

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM dockerd (it stops its containerd), then SIGKILL what remains; unmount leftovers."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.process.wait(timeout=30)
        self.process = None
        prefixes = (str(self.base) + "/", str(self.run_dir) + "/")
        with open("/proc/mounts") as mounts:
            leftovers = [line.split()[1] for line in mounts if line.split()[1].startswith(prefixes)]
        for mount in sorted(leftovers, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> "DockerDaemon":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
