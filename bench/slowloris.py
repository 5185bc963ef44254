"""Slow clients against a registry: are other clients still answered, and how fast?

    python bench/slowloris.py [--counts 16,32,200] [--kinds header,body,both] [--seconds 20]
                              [--servers ours,distribution] [--url http://127.0.0.1:5000]

Each phase keeps ``count`` slow connections of a kind open against one server for ``--seconds``
while probe threads send ordinary requests (GET /v2/, HEAD of a blob, GET of a manifest by tag),
each on a new connection, and records whether and how fast each was answered:

* header: ``GET /v2/`` whose header lines arrive one every ``--header-interval`` seconds and
  never end (slowloris);
* body: ``POST`` an upload session, then ``PATCH`` it with ``Content-Length`` ``--body-length``
  and send ``--body-rate`` bytes every second (a slow-body upload, "R.U.D.Y.");
* both: ``count`` of each at once;
* idle: connections that send nothing at all (not run unless asked for with ``--kinds``).

A slow connection the server closes is opened again, as an attacker would. In every phase with
slow bodies, one legitimate slow upload (``--legit-bytes`` at ``--legit-rate`` bytes per second)
must also complete with 202. The report gives, per phase: the probes sent, the share answered
within 1 s, p50 and p99 latency (a probe not answered within ``--probe-timeout`` counts at that
time), how many times the server closed a slow connection, and the legit upload's status.
Everything is bounded: the phase length, every socket operation, the connection count.
See docs/deploy.rst.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients  # noqa: E402
import servers  # noqa: E402

REPO = "bench/slow"
IMAGE = "bench/slowimage"
MANIFEST_ACCEPT = ("application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json")
KINDS = ("header", "body", "both", "idle")
DEFAULT_KINDS = ("header", "body", "both")
#: Slow connections opened per turn of the attacker's loop: a ramp, not a SYN flood.
OPEN_PER_TURN = 50
#: Seconds a slow body's POST may take before that attacker gives up and starts again.
POST_TIMEOUT = 10.0


@dataclass
class Settings:
    """How the slow clients and the probes behave."""

    header_interval: float = 2.0
    body_length: int = 1 << 20
    body_rate: int = 4
    body_interval: float = 1.0
    legit_bytes: int = 16 << 10
    legit_rate: int = 4 << 10
    probe_threads: int = 4
    probe_pause: float = 0.1
    probe_timeout: float = 5.0
    ramp_timeout: float = 30.0


@dataclass
class PhaseResult:
    """What one phase measured."""

    kind: str
    count: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    established: int = 0
    closed_by_server: int = 0
    legit: str = "-"
    #: Peak memory of all the server's processes during the phase (when this script started it).
    peak_mib: float | None = None
    peak_threads: int | None = None

    @property
    def probes(self) -> int:
        return len(self.latencies) + sum(self.failures.values())

    def answered_within(self, limit: float = 1.0) -> float:
        """Percentage of probes answered with the expected status within ``limit`` seconds."""
        return 100.0 * sum(1 for t in self.latencies if t <= limit) / self.probes if self.probes else 0.0

    def percentile(self, p: float, timeout: float) -> float:
        """Latency percentile in ms; an unanswered probe counts as the probe timeout."""
        values = sorted(self.latencies + [timeout] * sum(self.failures.values()))
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] * 1000

    def as_json(self, timeout: float) -> dict[str, object]:
        return {
            "kind": self.kind, "count": self.count, "seconds": self.seconds, "probes": self.probes,
            "answered_within_1s_pct": round(self.answered_within(), 2),
            "p50_ms": round(self.percentile(50, timeout), 1), "p99_ms": round(self.percentile(99, timeout), 1),
            "failures": self.failures, "established": self.established,
            "closed_by_server": self.closed_by_server, "legit_slow_upload": self.legit,
            "server_peak_rss_mib": self.peak_mib, "server_peak_threads": self.peak_threads,
        }


class _Slow:
    """One slow connection and where it is in its script."""

    def __init__(self, role: str, sock: socket.socket, now: float) -> None:
        self.role = role  # "header", "post" (a body's session request), "body", "legit"
        self.sock = sock
        self.opened = now
        self.next_send = now
        self.sent = 0
        self.received = bytearray()
        self.location = ""
        self.started = now


class Attacker:
    """Keeps ``headers`` slow-header and ``bodies`` slow-body connections open, in one thread."""

    def __init__(self, host: str, port: int, headers: int, bodies: int, settings: Settings,
                 legit: bool, idle: int = 0) -> None:
        self.host, self.port = host, port
        self.want = {"header": headers, "body": bodies, "idle": idle}
        self.settings = settings
        self.legit_wanted = legit
        self.legit_result = "not started" if legit else "-"
        self.selector = selectors.DefaultSelector()
        self.conns: set[_Slow] = set()
        self.closed_by_server = 0
        self.established = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slowloris", daemon=True)
        self._legit_started = False

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        for conn in list(self.conns):
            self._close(conn)
        self.selector.close()

    def active(self, role: str) -> int:
        """How many connections of ``role`` have sent their first bytes and are trickling."""
        return sum(1 for c in list(self.conns) if c.role == role and c.sent > 0)

    def legit_done(self) -> bool:
        """The legitimate slow upload has an outcome (or none was wanted)."""
        return self.legit_result not in ("not started", "running")

    def ready(self) -> bool:
        """Every wanted slow connection is open and has started its slow part."""
        return all(self.active(role) >= count for role, count in self.want.items())

    # -- the loop ----------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self._open_missing(now)
            for key, _ in self.selector.select(timeout=0.05):
                self._readable(key.data)
            now = time.monotonic()
            for conn in list(self.conns):
                if conn.next_send <= now:
                    self._send_next(conn, now)
                elif conn.role == "post" and now - conn.opened > POST_TIMEOUT:
                    self._close(conn)

    def _count(self, role: str) -> int:
        roles = ("post", "body") if role == "body" else (role,)
        return sum(1 for c in self.conns if c.role in roles)

    def _open_missing(self, now: float) -> None:
        budget = OPEN_PER_TURN
        for role in ("header", "body", "idle"):
            missing = self.want[role] - self._count(role)
            for _ in range(max(0, min(missing, budget))):
                self._open("post" if role == "body" else role, now)
                budget -= 1
        if self.legit_wanted and not self._legit_started and self.ready():
            self._legit_started = True
            self.legit_result = "running" if self._open("legit-post", now) else "could not connect"

    def _open(self, role: str, now: float) -> _Slow | None:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=2.0)
        except OSError:
            return None
        sock.setblocking(False)
        conn = _Slow(role, sock, now)
        if role == "idle":
            conn.sent, conn.next_send = 1, now + 1e9  # connected is all it ever does
            self.established += 1
        self.conns.add(conn)
        self.selector.register(sock, selectors.EVENT_READ, conn)
        return conn

    def _close(self, conn: _Slow) -> None:
        self.conns.discard(conn)
        try:
            self.selector.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        conn.sock.close()

    def _send(self, conn: _Slow, data: bytes) -> bool:
        try:
            conn.sock.send(data)  # a few bytes into an empty send buffer: never partial
            return True
        except OSError:
            self._server_closed(conn)
            return False

    def _server_closed(self, conn: _Slow) -> None:
        if conn.role in ("header", "body", "idle"):
            self.closed_by_server += 1
        if conn.role in ("legit", "legit-post"):
            self.legit_result = f"connection closed after {conn.sent} bytes"
        self._close(conn)

    def _send_next(self, conn: _Slow, now: float) -> None:
        s = self.settings
        host = f"Host: {self.host}:{self.port}\r\n"
        if conn.role == "header":
            if conn.sent == 0:
                line = f"GET /v2/ HTTP/1.1\r\n{host}User-Agent: slowloris\r\n"
                self.established += 1
            else:
                line = f"X-Slow-{conn.sent}: {random.randrange(1 << 30)}\r\n"
            if self._send(conn, line.encode()):
                conn.sent += 1
                conn.next_send = now + s.header_interval
        elif conn.role in ("post", "legit-post"):
            if conn.sent == 0:
                request = f"POST /v2/{REPO}/blobs/uploads/ HTTP/1.1\r\n{host}Content-Length: 0\r\n\r\n"
                if self._send(conn, request.encode()):
                    conn.sent = 1
            conn.next_send = now + 3600  # the response moves it on
        elif conn.role in ("body", "legit"):
            length = s.body_length if conn.role == "body" else s.legit_bytes
            rate = s.body_rate if conn.role == "body" else s.legit_rate
            if conn.sent == 0:
                path = urlsplit(conn.location)
                target = path.path + ("?" + path.query if path.query else "")
                head = (f"PATCH {target} HTTP/1.1\r\n{host}Content-Type: application/octet-stream\r\n"
                        f"Content-Range: 0-{length - 1}\r\nContent-Length: {length}\r\n\r\n")
                if not self._send(conn, head.encode()):
                    return
                if conn.role == "body":
                    self.established += 1
            piece = min(rate, length - conn.sent)
            if piece > 0 and self._send(conn, b"x" * piece):
                conn.sent += piece
            conn.next_send = now + (s.body_interval if conn.role == "body" else 1.0)
            if conn.sent >= length:
                conn.next_send = now + 3600  # sent everything: wait for the answer

    def _readable(self, conn: _Slow) -> None:
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._server_closed(conn)
            return
        conn.received += data
        head_end = conn.received.find(b"\r\n\r\n")
        if head_end < 0:
            if len(conn.received) > 65536:
                self._server_closed(conn)
            return
        status, headers = _parse_head(bytes(conn.received[:head_end]))
        if conn.role in ("post", "legit-post"):
            location = headers.get("location", "")
            self._close(conn)
            if status != 202 or not location:
                if conn.role == "legit-post":
                    self.legit_result = f"POST answered {status}"
                return  # the loop opens another slow body
            role = "body" if conn.role == "post" else "legit"
            body = self._open(role, time.monotonic())
            if body is not None:
                body.location = location
                body.started = conn.started
            elif role == "legit":
                self.legit_result = "could not connect for the PATCH"
        elif conn.role == "legit":
            elapsed = time.monotonic() - conn.started
            self.legit_result = f"{status} after {elapsed:.1f} s ({conn.sent} bytes)"
            self._close(conn)
        else:
            self._server_closed(conn)  # the server answered a slow request: an error, then close


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        status = 0
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


class Prober:
    """Threads sending ordinary requests on new connections, recording latency or failure."""

    def __init__(self, host: str, port: int, blob: str, settings: Settings) -> None:
        self.host, self.port = host, port
        self.settings = settings
        self.targets = [
            ("GET", "/v2/", {}),
            ("HEAD", f"/v2/{REPO}/blobs/{blob}", {}),
            ("GET", f"/v2/{IMAGE}/manifests/latest", {"Accept": MANIFEST_ACCEPT}),
        ]
        self.latencies: list[float] = []
        self.failures: dict[str, int] = {}
        self._lock = threading.Lock()

    def run(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        threads = [threading.Thread(target=self._loop, args=(end, i), daemon=True)
                   for i in range(self.settings.probe_threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + self.settings.probe_timeout + 10)

    def _loop(self, end: float, offset: int) -> None:
        n = offset
        while time.monotonic() < end:
            method, path, headers = self.targets[n % len(self.targets)]
            n += 1
            started = time.monotonic()
            outcome = self._probe(method, path, headers)
            elapsed = time.monotonic() - started
            with self._lock:
                if outcome is None:
                    self.latencies.append(elapsed)
                else:
                    self.failures[outcome] = self.failures.get(outcome, 0) + 1
            time.sleep(self.settings.probe_pause)

    def _probe(self, method: str, path: str, headers: dict[str, str]) -> str | None:
        """None if answered with 200; else what went wrong."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.settings.probe_timeout)
        try:
            conn.request(method, path, headers=headers)
            response = conn.getresponse()
            response.read()
            return None if response.status == 200 else f"HTTP {response.status}"
        except (socket.timeout, TimeoutError):
            return "timeout"
        except (OSError, http.client.HTTPException) as exc:
            return type(exc).__name__
        finally:
            conn.close()


def setup(base: str) -> str:
    """The blob and the manifest the probes ask for; return the blob's digest."""
    s = clients.Setup(base)
    digest = s.push_blob(REPO, b"probe blob " * 100)
    s.push_manifest(IMAGE, ["latest"], b"probe layer " * 100)
    return digest


def run_phase(base: str, blob: str, kind: str, count: int, seconds: float,
              settings: Settings) -> PhaseResult:
    """Hold ``count`` slow connections of ``kind`` open for ``seconds`` while probing."""
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = count if kind in ("header", "both") else 0
    bodies = count if kind in ("body", "both") else 0
    attacker = Attacker(host, port, headers, bodies, settings, legit=bodies > 0,
                        idle=count if kind == "idle" else 0)
    result = PhaseResult(kind, count, seconds)
    attacker.start()
    try:
        deadline = time.monotonic() + settings.ramp_timeout
        while not attacker.ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        prober = Prober(host, port, blob, settings)
        prober.run(seconds)
        result.latencies, result.failures = prober.latencies, prober.failures
        # Let the legitimate slow upload finish, bounded by its own length plus a margin.
        legit_end = time.monotonic() + settings.legit_bytes / settings.legit_rate + 15
        while not attacker.legit_done() and time.monotonic() < legit_end:
            time.sleep(0.2)
    finally:
        attacker.stop()
    result.established = attacker.established
    result.closed_by_server = attacker.closed_by_server
    result.legit = attacker.legit_result
    return result


class ThreadSampler(servers.RssSampler):
    """RssSampler that also records the peak number of threads of the server's processes."""

    peak_threads = 0

    def _run(self) -> None:
        sampler = threading.Thread(target=super()._run, daemon=True)
        sampler.start()
        while not self._stop.is_set():
            count = 0
            for pid in self.server.pids():
                try:
                    count += len(os.listdir(f"/proc/{pid}/task"))
                except OSError:
                    pass
            self.peak_threads = max(self.peak_threads, count)
            self._stop.wait(0.2)
        sampler.join(5)


def render(results: dict[str, list[PhaseResult]], timeout: float) -> str:
    """One aligned table of every phase of every server."""
    rows = [("server", "slow", "count", "probes", "<=1s %", "p50 ms", "p99 ms", "failed",
             "closed", "RSS MiB", "threads", "legit slow upload")]
    for server, phases in results.items():
        for r in phases:
            failed = ", ".join(f"{k} {v}" for k, v in sorted(r.failures.items())) or "0"
            rows.append((server, r.kind, str(r.count), str(r.probes), f"{r.answered_within():.1f}",
                         f"{r.percentile(50, timeout):.0f}", f"{r.percentile(99, timeout):.0f}",
                         failed, str(r.closed_by_server), "-" if r.peak_mib is None else f"{r.peak_mib:.0f}",
                         "-" if r.peak_threads is None else str(r.peak_threads), r.legit))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i in (0, 1, 7, 11) else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--counts", default="16,32,200", help="slow connections per kind, comma-separated")
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS),
                   help=f"phases to run, of {','.join(KINDS)} (default {','.join(DEFAULT_KINDS)})")
    p.add_argument("--seconds", type=float, default=20.0, help="probing time per phase (default 20)")
    p.add_argument("--servers", default="ours", help="servers to start: ours, distribution (comma-separated)")
    p.add_argument("--url", help="probe this running server instead of starting any")
    p.add_argument("--workers", type=int, help="--workers for our server")
    p.add_argument("--threads", type=int, help="--threads for our server")
    p.add_argument("--ours-arg", action="append", default=[], help="extra serve argument (repeatable)")
    p.add_argument("--ours-command", help="replace our serve command ({host} {port} {root} filled in)")
    p.add_argument("--registry-binary", default=shutil.which("docker-registry") or "docker-registry")
    p.add_argument("--header-interval", type=float, default=Settings.header_interval)
    p.add_argument("--body-length", type=int, default=Settings.body_length)
    p.add_argument("--body-rate", type=int, default=Settings.body_rate, help="bytes per second")
    p.add_argument("--probe-timeout", type=float, default=Settings.probe_timeout)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--tmpdir", default=tempfile.gettempdir())
    return p.parse_args(argv)


def measure(base: str, counts: list[int], kinds: list[str], seconds: float,
            settings: Settings, log: bool = True, server: servers.Server | None = None) -> list[PhaseResult]:
    """Every phase against the server at ``base``, a short pause between them; with ``server``
    (one this script started), also its peak memory and thread count in each phase."""
    blob = setup(base)
    out = []
    for count in counts:
        for kind in kinds:
            if server is None:
                result = run_phase(base, blob, kind, count, seconds, settings)
            else:
                with ThreadSampler(server, interval=0.05) as sampler:
                    result = run_phase(base, blob, kind, count, seconds, settings)
                result.peak_mib = round(sampler.peak_sum_kib / 1024, 1)
                result.peak_threads = sampler.peak_threads
            if log:
                print(f"  {kind} x{count}: {result.answered_within():.1f}% within 1 s, "
                      f"p99 {result.percentile(99, settings.probe_timeout):.0f} ms, "
                      f"legit {result.legit}", file=sys.stderr, flush=True)
            out.append(result)
            time.sleep(2.0)  # the server closes what the phase left behind
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    counts = [int(c) for c in args.counts.split(",") if c.strip()]
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if set(kinds) - set(KINDS) or not counts or min(counts) < 1 or args.seconds <= 0:
        raise SystemExit(f"--kinds must be of {KINDS}; --counts and --seconds positive")
    settings = Settings(header_interval=args.header_interval, body_length=args.body_length,
                        body_rate=args.body_rate, probe_timeout=args.probe_timeout)
    results: dict[str, list[PhaseResult]] = {}
    if args.url:
        results[args.url] = measure(args.url, counts, kinds, args.seconds, settings)
    else:
        tmp = Path(tempfile.mkdtemp(prefix="registry-slowloris-", dir=args.tmpdir))
        try:
            for name in [s.strip() for s in args.servers.split(",") if s.strip()]:
                folder = tmp / name
                folder.mkdir()
                if name == "ours":
                    server = servers.start_ours(folder, workers=args.workers, threads=args.threads,
                                                extra=args.ours_arg, command=args.ours_command)
                elif name == "distribution":
                    server = servers.start_distribution(folder, args.registry_binary)
                else:
                    raise SystemExit(f"unknown server {name!r}")
                try:
                    print(f"{name}:", file=sys.stderr, flush=True)
                    results[name] = measure(server.base, counts, kinds, args.seconds, settings,
                                            server=server)
                finally:
                    server.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    print(render(results, settings.probe_timeout))
    if args.json:
        Path(args.json).write_text(json.dumps(
            {name: [r.as_json(settings.probe_timeout) for r in phases] for name, phases in results.items()},
            indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
