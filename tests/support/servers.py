"""Run servers for tests: any command on a free loopback port, and the standalone registry.

Every server binds 127.0.0.1 on a port chosen by :func:`free_port` (several people run the
tests at once on one machine), runs in its own process group so that gunicorn's master and
workers all die at teardown, and writes its output to a log file. The log is printed to stderr
when the server stops, so pytest shows it in the report of a failing test (and hides it for a
passing one).

Typical use::

    with RegistryServer(tmp_path / "data", log_path=tmp_path / "registry.log") as registry:
        requests.get(registry.url + "/v2/")          # registry.hostport == "127.0.0.1:<port>"

    with ServerProcess(["gunicorn", "-b", "127.0.0.1:{port}", "myapp:app"],
                       ready_path="/", log_path=tmp_path / "site.log") as site:
        ...                                          # site.url == "http://127.0.0.1:<port>"
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Mapping, Sequence

__all__ = [
    "free_port",
    "wait_for_port",
    "wait_for_http",
    "ServerStartError",
    "ServerProcess",
    "RegistryServer",
]

LOOPBACK = "127.0.0.1"
_ADDRESS_IN_USE = ("Address already in use", "[Errno 98]")


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that was free on ``host`` a moment ago (bind port 0, read, close).

    Another process may take it before the server binds; :class:`ServerProcess` retries with a
    new port when the server's log says the address is in use.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Wait until a TCP connection to ``host:port`` succeeds; raise ``TimeoutError`` otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout:.0f}s")
            time.sleep(0.05)


def wait_for_http(host: str, port: int, path: str = "/", timeout: float = 30.0) -> int:
    """Wait until ``GET path`` on ``host:port`` gets any HTTP response; return its status.

    Any status counts (a registry with auth answers ``/v2/`` with 401): the point is that the
    application is loaded and answering, not only that the socket is bound.
    """
    deadline = time.monotonic() + timeout
    while True:
        conn = http.client.HTTPConnection(host, port, timeout=5.0)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        except (OSError, http.client.HTTPException):
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no HTTP answer from http://{host}:{port}{path} after {timeout:.0f}s")
            time.sleep(0.1)
        finally:
            conn.close()


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message holds the tail of its log."""


class ServerProcess:
    """Run ``command`` as a server on a free loopback port for the life of a ``with`` block.

    ``command`` items may contain ``{port}``, ``{host}`` and ``{hostport}``; they are formatted
    with the chosen port. Readiness is an HTTP answer (any status) on ``ready_path``, or only an
    open port when ``ready_path`` is ``None``. ``env`` is added to the current environment.
    Output goes to ``log_path`` (a temporary file beside nothing if omitted: pass one in tests
    so the log survives for inspection). The process gets its own session/process group, and
    :meth:`stop` signals the main process (``stop_signal``, default SIGINT, which is gunicorn's
    quick shutdown; SIGTERM would wait for its graceful timeout), then SIGKILLs what remains.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        ready_path: str | None = "/",
        host: str = LOOPBACK,
        port: int | None = None,
        start_timeout: float = 60.0,
        stop_signal: int = signal.SIGINT,
        stop_timeout: float = 10.0,
        show_log_on_stop: bool = True,
        start_attempts: int = 3,
    ) -> None:
        self._command = list(command)
        self._env = dict(env or {})
        self._cwd = cwd
        self._ready_path = ready_path
        self.host = host
        self._fixed_port = port
        self.port = port or 0
        self._start_timeout = start_timeout
        self._stop_signal = stop_signal
        self._stop_timeout = stop_timeout
        self._show_log_on_stop = show_log_on_stop
        self._start_attempts = 1 if port else start_attempts
        if log_path is None:
            import tempfile

            fd, name = tempfile.mkstemp(prefix="server-", suffix=".log")
            os.close(fd)
            log_path = name
        self.log_path = Path(log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def hostport(self) -> str:
        """``host:port``, the form clients such as skopeo and oras take as a registry name."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """Base URL without a trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.hostport}"

    @property
    def command(self) -> list[str]:
        """The command as run, with ``{port}``/``{host}``/``{hostport}`` filled in."""
        values = {"port": self.port, "host": self.host, "hostport": self.hostport}
        return [part.format(**values) if "{" in part else part for part in self._command]

    def log_text(self) -> str:
        """The server's output so far (decoded leniently)."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def start(self) -> "ServerProcess":
        """Start the server and wait until it answers; raise :class:`ServerStartError` if not."""
        last_error: ServerStartError | None = None
        for _ in range(self._start_attempts):
            self.port = self._fixed_port or free_port(self.host)
            try:
                self._start_once()
                return self
            except ServerStartError as exc:
                last_error = exc
                if not any(marker in self.log_text() for marker in _ADDRESS_IN_USE):
                    raise
        assert last_error is not None
        raise last_error

    def _start_once(self) -> None:
        env = {**os.environ, **self._env}
        with open(self.log_path, "ab") as log:
            log.write(f"$ {' '.join(self.command)}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self._cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + self._start_timeout
        while True:
            if self.process.poll() is not None:
                code = self.process.returncode
                self._kill_group(signal.SIGKILL)
                raise ServerStartError(f"server exited with {code} before answering\n{self._log_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.stop(show_log=False)
                raise ServerStartError(f"server did not answer within {self._start_timeout:.0f}s\n{self._log_tail()}")
            try:
                if self._ready_path is None:
                    wait_for_port(self.host, self.port, timeout=min(0.5, remaining))
                else:
                    wait_for_http(self.host, self.port, self._ready_path, timeout=min(0.5, remaining))
                return
            except TimeoutError:
                continue

    def _log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()
        return "\n".join(text[-lines:])

    def _kill_group(self, sig: int) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def child_pids(self) -> list[int]:
        """The pids of the server process's children (gunicorn's workers), from ``/proc`` (Linux)."""
        if self.process is None:
            return []
        pids: list[int] = []
        try:
            tasks = os.listdir(f"/proc/{self.process.pid}/task")
        except FileNotFoundError:
            return []
        for task in tasks:
            try:
                with open(f"/proc/{self.process.pid}/task/{task}/children") as children:
                    pids += [int(pid) for pid in children.read().split()]
            except FileNotFoundError:
                continue
        return sorted(pids)

    def kill(self) -> None:
        """SIGKILL the whole process group at once (a crash of master and workers); reap the master.

        Unlike :meth:`stop`, nothing gets to finish or clean up. :meth:`start` may follow.
        """
        if self.process is None:
            return
        self._kill_group(signal.SIGKILL)
        self.process.wait(timeout=self._stop_timeout)
        self.process = None

    def stop(self, show_log: bool | None = None) -> None:
        """Stop the main process (``stop_signal``), then SIGKILL the group; print the log to stderr."""
        if self.process is None:
            return
        if self.process.poll() is None:
            # The main process only: gunicorn's master stops its workers itself, and a worker
            # that gets SIGINT while its main thread holds the thread pool's lock hangs
            # (gunicorn 27); whatever remains is killed with the group below.
            try:
                os.kill(self.process.pid, self._stop_signal)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=self._stop_timeout)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group(signal.SIGKILL)  # workers that outlived their master
        if self.process.poll() is None:
            self.process.wait(timeout=self._stop_timeout)
        self.process = None
        if show_log if show_log is not None else self._show_log_on_stop:
            sys.stderr.write(f"----- log of {' '.join(self.command)} ({self.log_path}) -----\n")
            sys.stderr.write(self.log_text())
            sys.stderr.write("\n----- end of log -----\n")

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RegistryServer(ServerProcess):
    """The standalone registry (``python -m docker_registry_wsgi serve``) on a free port.

    Runs ``<command> --host 127.0.0.1 --port <free> --root <root> <extra_args>``, where
    ``command`` defaults to ``[sys.executable, "-m", "docker_registry_wsgi", "serve"]`` (pass
    ``["docker-registry-wsgi", "serve"]`` to test the console script). Ready when ``GET /v2/``
    answers with any status. ``root`` is created if missing. ``show_log_on_stop=False`` keeps
    the log out of stderr at teardown (for long-lived fixtures that report it per test).
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
        log_path: str | os.PathLike[str] | None = None,
        start_timeout: float = 60.0,
        show_log_on_stop: bool = True,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        base = list(command) if command else [sys.executable, "-m", "docker_registry_wsgi", "serve"]
        super().__init__(
            [*base, "--host", LOOPBACK, "--port", "{port}", "--root", str(self.root), *extra_args],
            env=env,
            log_path=log_path,
            ready_path="/v2/",
            start_timeout=start_timeout,
            show_log_on_stop=show_log_on_stop,
        )
