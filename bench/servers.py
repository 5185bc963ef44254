"""Start, watch and stop the servers the benchmark compares: ours, the Go registry, nginx.

Each server runs in its own session (process group) on a free loopback port, with its own
config and data folder under the benchmark's temporary folder, so that stopping it stops its
workers too and nothing outside that folder is touched.
"""

from __future__ import annotations

import http.client
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Server",
    "RssSampler",
    "free_port",
    "start_ours",
    "start_distribution",
    "start_distribution_s3",
    "start_nginx",
    "process_tree",
    "cpu_seconds",
]

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fill(template: Path, values: dict[str, str]) -> str:
    """The template's text with every ``@NAME@`` replaced by ``values[NAME]``."""
    text = template.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    unfilled = re.findall(r"@[A-Z_]+@", text)
    if unfilled:
        raise ValueError(f"unfilled placeholders in {template}: {unfilled}")
    return text


@dataclass
class Server:
    """A server process started by the benchmark, and how to reach it."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_path: str
    _log_file: object = field(default=None, repr=False)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``ready_path`` until the server answers with any HTTP status, or fail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", self.ready_path)
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def pids(self) -> list[int]:
        """The server's processes: the one we started and all its descendants."""
        return process_tree(self.process.pid)

    def cpu(self) -> float:
        """CPU seconds the server's processes have used so far."""
        return cpu_seconds(self.pids())

    def stop(self) -> None:
        """Stop the server's process group: SIGTERM, then SIGKILL after a bounded wait."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait(STOP_TIMEOUT)
        # Workers may outlive a master that died first; they are in the same group.
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]


def _spawn(name: str, argv: list[str], port: int, log: Path, ready_path: str,
           env: dict[str, str] | None = None) -> Server:
    log_file = open(log, "wb")
    process = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        start_new_session=True, env=env,
    )
    server = Server(name, process, port, log, ready_path, log_file)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def start_ours(tmp: Path, *, workers: int | None, threads: int | None,
               extra: list[str] | None = None, command: str | None = None,
               storage: list[str] | None = None, environ: dict[str, str] | None = None) -> Server:
    """Our standalone server (gunicorn gthread) with filesystem storage under ``tmp``.

    ``command``, if given, replaces the serve command (for trying another server setup); its
    ``{host}``, ``{port}`` and ``{root}`` are filled in. ``storage`` replaces ``--root`` with
    other storage options (the s3 group), ``environ`` adds to the server's environment.
    """
    port = free_port()
    root = tmp / "ours-data"
    root.mkdir(exist_ok=True)
    if command:
        argv = [part.format(host="127.0.0.1", port=port, root=root) for part in shlex.split(command)]
    else:
        argv = [sys.executable, "-m", "docker_registry_wsgi", "serve", "--host", "127.0.0.1",
                "--port", str(port)] + (storage if storage is not None else ["--root", str(root)])
    if workers is not None:
        argv += ["--workers", str(workers)]
    if threads is not None:
        argv += ["--threads", str(threads)]
    argv += extra or []
    env = dict(os.environ, **(environ or {}))
    # Run the checkout's package even when bench/ is run from elsewhere.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH", "")]))
    return _spawn("ours", argv, port, tmp / "ours.log", "/v2/", env)


def start_distribution(tmp: Path, binary: str) -> Server:
    """The Go reference registry with its own config and filesystem storage under ``tmp``."""
    port = free_port()
    root = tmp / "distribution-data"
    root.mkdir(exist_ok=True)
    config = tmp / "registry.yml"
    config.write_text(_fill(HERE / "config" / "registry.yml",
                            {"ADDR": f"127.0.0.1:{port}", "ROOT": str(root)}))
    return _spawn("distribution", [binary, "serve", str(config)], port,
                  tmp / "distribution.log", "/v2/")


def start_distribution_s3(tmp: Path, binary: str, *, endpoint: str, bucket: str, region: str,
                          access_key: str, secret_key: str) -> Server:
    """The Go reference registry with its s3 driver (``bench/config/registry-s3.yml``)."""
    port = free_port()
    config = tmp / "registry-s3.yml"
    config.write_text(_fill(HERE / "config" / "registry-s3.yml", {
        "ADDR": f"127.0.0.1:{port}", "ENDPOINT": endpoint, "BUCKET": bucket, "REGION": region,
        "ACCESS_KEY": access_key, "SECRET_KEY": secret_key}))
    config.chmod(0o600)
    # The AWS SDK for Go fails to start when AWS_CA_BUNDLE is set and the transport is its own.
    env = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}
    return _spawn("distribution", [binary, "serve", str(config)], port,
                  tmp / "distribution.log", "/v2/", env)


def start_nginx(tmp: Path, binary: str, root: Path) -> Server:
    """nginx serving the files of ``root``: the loopback ceiling for a static GET."""
    port = free_port()
    folder = tmp / "nginx"
    folder.mkdir(exist_ok=True)
    config = folder / "nginx.conf"
    config.write_text(_fill(HERE / "nginx.conf",
                            {"PORT": str(port), "ROOT": str(root), "TMP": str(folder)}))
    return _spawn("nginx", [binary, "-c", str(config), "-p", str(folder)], port,
                  folder / "nginx.log", "/")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants, read from /proc (bounded by the number of processes)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ")".
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by the processes ``pids`` (from /proc/<pid>/stat)."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2:].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat(5)
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kib(pid: int, field_name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class RssSampler:
    """Samples the resident memory of a server's processes in a thread while work runs.

    Reports the peak of the sum over all processes (sampled), and each process's own peak
    (the kernel's VmHWM, exact), split into the master (the process we started, or the
    processes with children) and workers (leaves).
    """

    def __init__(self, server: Server, interval: float = 0.01) -> None:
        self.server = server
        self.interval = interval
        self.peak_sum_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        pids = self.server.pids()
        refreshed = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - refreshed > 0.5:
                pids, refreshed = self.server.pids(), time.monotonic()
            total = sum(_status_kib(pid, "VmRSS") or 0 for pid in pids)
            self.peak_sum_kib = max(self.peak_sum_kib, total)
            self._stop.wait(self.interval)

    def report(self) -> dict[str, object]:
        """Peaks in MiB: total (sum, sampled), per worker (max VmHWM), each process's VmHWM."""
        pids = self.server.pids()
        tree = {pid: process_tree(pid) for pid in pids}
        hwm = {pid: (_status_kib(pid, "VmHWM") or 0) / 1024 for pid in pids}
        workers = [pid for pid in pids if len(tree[pid]) == 1] if len(pids) > 1 else pids
        masters = [pid for pid in pids if pid not in workers]
        return {
            "peak_total_mib": round(self.peak_sum_kib / 1024, 1) if self.peak_sum_kib else None,
            "peak_worker_mib": round(max((hwm[p] for p in workers), default=0.0), 1),
            "master_mib": [round(hwm[p], 1) for p in masters],
            "workers_mib": [round(hwm[p], 1) for p in workers],
        }
