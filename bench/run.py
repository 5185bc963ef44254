"""Benchmark our standalone registry beside the Go reference registry, on this machine.

    python bench/run.py [--quick] [--runs N] [--json PATH] [--workers N --threads M]

Starts both servers (and nginx, for the loopback ceiling) on free loopback ports with their
data in a temporary folder, runs the same workload against each with C clients (curl, wrk),
alternating the servers run by run, and prints the median of each number, the ratio, and the
floors of issue 6; writes everything as JSON. See docs/benchmark.rst.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients  # noqa: E402
import limits  # noqa: E402
import servers  # noqa: E402
import slowloris  # noqa: E402

MiB = 1 << 20
REPO = "bench/blobs"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LUA = Path(__file__).resolve().parent / "lua"
GROUPS = ("limits", "push", "pull", "small", "many", "rss")
#: Groups run only when --only names them.
OPTIONAL_GROUPS = ("slowloris",)
#: The slowloris group: this many slow heads and as many slow uploads (bench/slowloris.py).
SLOW_CLIENTS = 200
MANIFEST_ACCEPT = ("Accept: application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json")


@dataclass
class Sizes:
    """How big the workload is: the full one of issue 6, or a tiny one for the smoke test."""

    blob: int = 512 * MiB
    chunks: int = 8
    big: int = 2048 * MiB
    seconds: float = 10.0
    connections: int = 32
    many: int = 64
    many_size: int = 1 * MiB
    runs: int = 3


QUICK = Sizes(blob=8 * MiB, chunks=8, big=32 * MiB, seconds=1.0, connections=32,
              many=64, many_size=16 << 10, runs=1)


@dataclass
class Metric:
    """One row of the table: a number per run for each server, and how to judge it."""

    label: str
    unit: str
    higher_is_better: bool = True
    floor: float | None = None
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""
    #: "speed" (the issue's table), "cpu" (server CPU per unit of work), "latency".
    group: str = "speed"

    def add(self, server: str, value: float, errors: int = 0) -> None:
        self.values.setdefault(server, []).append(value)
        self.errors[server] = self.errors.get(server, 0) + errors

    def median(self, server: str) -> float | None:
        values = self.values.get(server)
        return statistics.median(values) if values else None

    def ratio(self, ours: str = "ours", other: str = "distribution") -> float | None:
        """Ours against the other, oriented so that > 1 means ours is better."""
        a, b = self.median(ours), self.median(other)
        if not a or not b:
            return None
        return a / b if self.higher_is_better else b / a

    def as_json(self) -> dict[str, object]:
        ratio = self.ratio()
        return {
            "label": self.label, "unit": self.unit, "higher_is_better": self.higher_is_better,
            "runs": self.values, "median": {k: self.median(k) for k in self.values},
            "errors": self.errors, "ratio": ratio, "floor": self.floor,
            "meets_floor": None if self.floor is None or ratio is None else ratio >= self.floor,
            "note": self.note, "group": self.group,
        }


def alternate(names: list[str], run: int) -> list[str]:
    """The servers in the order of this run: rotated each run so no one always goes first."""
    k = run % len(names)
    return names[k:] + names[:k]


class Files:
    """The payloads, made once from random bytes; each push gets a distinct tagged copy.

    Tagging overwrites the first 32 bytes, so every push is of a blob no server has seen,
    and the chunk files always hold the same bytes as the whole file.
    """

    def __init__(self, folder: Path, sizes: Sizes) -> None:
        self.folder = folder
        self.sizes = sizes
        self.blob = folder / "blob.bin"
        self.chunks = [folder / f"chunk-{i}.bin" for i in range(sizes.chunks)]
        block = limits.random_block(min(sizes.blob, 64 * MiB))
        _write_repeated(self.blob, block, sizes.blob)
        chunk_size = sizes.blob // sizes.chunks
        with open(self.blob, "rb") as src:
            for i, path in enumerate(self.chunks):
                last = i == len(self.chunks) - 1
                size = sizes.blob - chunk_size * i if last else chunk_size
                _copy_bounded(src, path, size)
        self.block = block

    def tag(self, label: str) -> str:
        """Make blob.bin (and chunk 0) a new blob named by ``label``; return its digest."""
        stamp = label.encode().ljust(32, b".")[:32]
        for path in (self.blob, self.chunks[0]):
            with open(path, "r+b") as f:
                f.write(stamp)
        return clients.sha256_file(self.blob)

    def big(self, label: str) -> tuple[Path, str]:
        """A file of the big size (the flat-memory check), tagged; return it and its digest."""
        path = self.folder / "big.bin"
        _write_repeated(path, self.block, self.sizes.big, label.encode().ljust(32, b".")[:32])
        return path, clients.sha256_file(path)

    def many(self, label: str) -> list[tuple[Path, str]]:
        """``many`` small distinct files for the concurrent pushes; return (path, digest)."""
        folder = self.folder / "many"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        out = []
        for i in range(self.sizes.many):
            path = folder / f"{i}.bin"
            path.write_bytes(f"{label}-{i}".encode().ljust(32, b".") + os.urandom(self.sizes.many_size - 32))
            out.append((path, clients.sha256_file(path)))
        return out


def _write_repeated(path: Path, block: bytes, size: int, head: bytes = b"") -> None:
    with open(path, "wb") as f:
        written = 0
        if head:
            written += f.write(head)
        while written < size:
            written += f.write(block[: min(len(block), size - written)])


def _copy_bounded(src: object, path: Path, size: int) -> None:
    with open(path, "wb") as dst:
        left = size
        while left:
            data = src.read(min(left, 8 * MiB))  # type: ignore[attr-defined]
            if not data:
                raise RuntimeError("source file ended early")
            dst.write(data)
            left -= len(data)


class Bench:
    """One benchmark run: the servers, the files, the metrics, in one temporary folder."""

    def __init__(self, args: argparse.Namespace, sizes: Sizes, tmp: Path) -> None:
        self.args = args
        self.sizes = sizes
        self.tmp = tmp
        self.metrics: dict[str, Metric] = {}
        self.limits: dict[str, list[float]] = {}
        self.rss: dict[str, dict[str, object]] = {}
        self.notes: list[str] = []
        self.started: list[servers.Server] = []
        (tmp / "files").mkdir()
        self.files = Files(tmp / "files", sizes)
        self.small_digest = ""
        self.pull_digest: dict[str, str] = {}
        self.load = {"start": os.getloadavg()}

    # -- servers -------------------------------------------------------------------------------

    def start(self, name: str, folder: Path) -> servers.Server:
        folder.mkdir(parents=True, exist_ok=True)
        if name == "ours":
            server = servers.start_ours(folder, workers=self.args.workers, threads=self.args.threads,
                                        extra=self.args.ours_arg, command=self.args.ours_command)
        elif name == "distribution":
            server = servers.start_distribution(folder, self.args.registry_binary)
        else:
            server = servers.start_nginx(folder, self.args.nginx_binary, self.tmp / "files")
        self.started.append(server)
        return server

    def stop(self, server: servers.Server) -> None:
        server.stop()
        if server in self.started:
            self.started.remove(server)

    def stop_all(self) -> None:
        for server in list(self.started):
            self.stop(server)

    def metric(self, key: str, *args: object, **kwargs: object) -> Metric:
        if key not in self.metrics:
            self.metrics[key] = Metric(*args, **kwargs)  # type: ignore[arg-type]
        return self.metrics[key]

    def cpu_metric(self, key: str, label: str, unit: str) -> Metric:
        """CPU the server's processes used for a piece of work: less at the mercy of other load."""
        return self.metric(f"cpu_{key}", label, unit, higher_is_better=False, group="cpu")

    # -- workload groups -----------------------------------------------------------------------

    def run(self, groups: list[str]) -> None:
        if "limits" in groups:
            self.measure_limits()
        main = {name: self.start(name, self.tmp / name) for name in ("ours", "distribution", "nginx")}
        pair = ["ours", "distribution"]
        for name in pair:
            self.setup(main[name])
        if "push" in groups or "pull" in groups:
            self.measure_push(main, pair)
        if "pull" in groups:
            self.measure_pull(main, pair)
        if "small" in groups:
            self.measure_small(main, pair)
        if "many" in groups:
            self.measure_many(main, pair)
        if "slowloris" in groups:
            self.measure_slowloris(main, pair)
        for name in pair:
            self.rss[f"after workload ({name})"] = servers.RssSampler(main[name]).report()
        self.stop_all()
        for name in pair + ["nginx"]:
            shutil.rmtree(self.tmp / name, ignore_errors=True)
        if "rss" in groups:
            self.measure_rss(pair)
        self.load["end"] = os.getloadavg()

    def measure_limits(self) -> None:
        s = self.sizes
        folder = self.tmp / "disk"
        folder.mkdir()
        for _ in range(s.runs):
            self.limits.setdefault("sha256 (hashlib), MB/s", []).append(limits.sha256_rate(s.blob))
            self.limits.setdefault(f"disk write+fsync {s.blob // MiB} MiB, MB/s", []).append(
                limits.disk_write_fsync_rate(folder, s.blob))
        folder.rmdir()

    def setup(self, server: servers.Server) -> None:
        """Untimed: the blobs and the manifest the small requests ask for."""
        setup = clients.Setup(server.base)
        assert setup.push_blob(REPO, b"") == EMPTY_DIGEST
        self.small_digest = setup.push_blob(REPO, b"x" * 1024)
        tags = ["latest"] + [f"v{i}" for i in range(1, 20)]
        setup.push_manifest("bench/image", tags, b"layer-bytes" * 100)

    def measure_push(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s, files = self.sizes, self.files
        mono = self.metric("push_monolithic", f"push {s.blob // MiB} MiB monolithic (POST+PUT)", "MB/s",
                           floor=2.0)
        chunked = self.metric("push_chunked",
                              f"push {s.blob // MiB} MiB chunked (POST, {s.chunks} PATCH, PUT)",
                              "MB/s", floor=2.5)
        for run in range(s.runs):
            for mode, metric in (("mono", mono), ("chunked", chunked)):
                digest = files.tag(f"{mode}-{run}-{time.time_ns()}")
                for name in alternate(pair, run):
                    os.sync()  # earlier pushes' write-back is not charged to this one
                    base = main[name].base
                    cpu = main[name].cpu()
                    if mode == "mono":
                        seconds = clients.push_monolithic(base, REPO, files.blob, digest)
                    else:
                        seconds = clients.push_chunked(base, REPO, files.chunks, digest)
                    metric.add(name, s.blob / seconds / 1e6)
                    self.cpu_metric(f"push_{mode}", metric.label, "CPU s/GB").add(
                        name, (main[name].cpu() - cpu) / (s.blob / 1e9))
                    previous = self.pull_digest.get(name)
                    self.pull_digest[name] = digest
                    if previous:
                        clients.Setup(base).delete_blob(REPO, previous)

    def measure_pull(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s = self.sizes
        full = self.metric("pull", f"pull {s.blob // MiB} MiB (GET to /dev/null)", "MB/s", floor=1.0)
        first, last = s.blob // 4 + 1, 3 * s.blob // 4
        ranged = self.metric("range", f"Range GET {(last - first + 1) / MiB:.0f} MiB", "MB/s")
        for run in range(s.runs):
            for name in alternate(pair + ["nginx"], run):
                if name == "nginx":
                    url = f"{main['nginx'].base}/blob.bin"
                    self.limits.setdefault("nginx GET (loopback ceiling), MB/s", []).append(
                        clients.get_rate(url, s.blob))
                    self.limits.setdefault("nginx Range GET, MB/s", []).append(
                        clients.get_rate(url, s.blob, (first, last)))
                    continue
                base, digest = main[name].base, self.pull_digest[name]
                cpu = main[name].cpu()
                full.add(name, clients.pull(base, REPO, digest, s.blob))
                self.cpu_metric("pull", full.label, "CPU s/GB").add(
                    name, (main[name].cpu() - cpu) / (s.blob / 1e9))
                ranged.add(name, clients.pull(base, REPO, digest, s.blob, (first, last)))
        nginx = self.limits.get("nginx GET (loopback ceiling), MB/s")
        if nginx:
            vs = self.metric("pull_vs_nginx", "pull, ours against nginx", "MB/s", floor=0.8)
            vs.values = {"ours": full.values["ours"], "distribution": nginx}
            vs.note = "ratio column: ours / nginx"

    def small_targets(self, main: dict[str, servers.Server]) -> list[tuple[str, str, str, tuple[str, ...], Path | None]]:
        """(key, label, path, headers, wrk script) of each small request."""
        head_path = f"/v2/{REPO}/blobs/{EMPTY_DIGEST}"
        head: tuple[str, str, str, tuple[str, ...], Path | None]
        # Stock wrk 4.1.0 waits for a HEAD response's body, so HEAD only works on a blob whose
        # Content-Length is 0: the empty blob. If a server says otherwise, GET the 1 KiB blob.
        lengths = {name: clients.Setup(main[name].base).request("HEAD", head_path).getheader("Content-Length")
                   for name in ("ours", "distribution")}
        if all(v == "0" for v in lengths.values()):
            head = ("head_blob", "HEAD blob (the empty blob; wrk + lua/head.lua)", head_path, (), LUA / "head.lua")
        else:
            self.notes.append(f"HEAD blob measured as GET of a 1 KiB blob: Content-Length {lengths}")
            head = ("head_blob", "HEAD blob (as GET 1 KiB: HEAD failed)", f"/v2/{REPO}/blobs/{self.small_digest}", (), None)
        return [
            head,
            ("get_manifest", "GET manifest by tag", "/v2/bench/image/manifests/latest", (MANIFEST_ACCEPT,), None),
            ("get_v2", "GET /v2/", "/v2/", (), None),
            ("tags_list", "GET tags list (20 tags)", "/v2/bench/image/tags/list", (), None),
            ("get_small_blob", "GET blob 1 KiB", f"/v2/{REPO}/blobs/{self.small_digest}", (), None),
        ]

    def measure_small(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s = self.sizes
        for key, label, path, headers, script in self.small_targets(main):
            floor = None if key == "get_small_blob" else 3.0
            metric = self.metric(key, f"{label}, {s.connections} conns", "req/s", floor=floor)
            for run in range(s.runs):
                for name in alternate(pair, run):
                    cpu = main[name].cpu()
                    out = clients.wrk(main[name].base + path, connections=s.connections,
                                      seconds=s.seconds, headers=headers, script=script)
                    cpu = main[name].cpu() - cpu
                    if out["requests"] == 0:
                        raise clients.BenchError(f"{label} on {name}: wrk completed no request")
                    metric.add(name, out["rps"], int(out["errors"]))
                    self.cpu_metric(key, label, "CPU us/req").add(name, cpu / out["requests"] * 1e6)
                    self.metric(f"latency_{key}", label, "p99 ms", higher_is_better=False,
                                group="latency").add(name, out["p99_ms"])

    def measure_many(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s, files = self.sizes, self.files
        size = f"{s.many_size // MiB} MiB" if s.many_size >= MiB else f"{s.many_size >> 10} KiB"
        metric = self.metric("many", f"{s.many} concurrent pushes of {size} (total)", "s",
                             higher_is_better=False)
        for run in range(s.runs):
            batch = files.many(f"many-{run}-{time.time_ns()}")
            for name in alternate(pair, run):
                os.sync()
                cpu = main[name].cpu()
                seconds, errors = clients.push_many(main[name].base, REPO, batch)
                metric.add(name, seconds, errors)
                self.cpu_metric("many", metric.label, "CPU s").add(name, main[name].cpu() - cpu)

    def measure_slowloris(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        """Ordinary requests while slow heads and slow uploads are held open (bench/slowloris.py)."""
        n = SLOW_CLIENTS
        share = self.metric("slowloris", f"answered within 1 s, {n} slow heads + {n} slow uploads", "%")
        for run in range(self.sizes.runs):
            for name in alternate(pair, run):
                settings = slowloris.Settings()
                [result] = slowloris.measure(main[name].base, [n], ["both"], self.sizes.seconds * 2,
                                             settings, log=False)
                share.add(name, result.answered_within(), sum(result.failures.values()))
                self.metric("latency_slowloris", f"probes under {n} + {n} slow clients", "p99 ms",
                            higher_is_better=False, group="latency").add(
                    name, result.percentile(99, settings.probe_timeout))

    def measure_rss(self, pair: list[str]) -> None:
        """Peak memory during one monolithic push, on a fresh server, at two sizes."""
        files, s = self.files, self.sizes
        sizes = [(s.blob, files.blob, files.tag(f"rss-{time.time_ns()}"))]
        big_path, big_digest = files.big(f"big-{time.time_ns()}")
        sizes.append((s.big, big_path, big_digest))
        for size, path, digest in sizes:
            for name in pair:
                folder = self.tmp / f"rss-{name}"
                server = self.start(name, folder)
                try:
                    with servers.RssSampler(server) as sampler:
                        seconds = clients.push_monolithic(server.base, REPO, path, digest)
                    report = sampler.report()
                    report["push_mb_s"] = round(size / seconds / 1e6, 1)
                    self.rss[f"{size // MiB} MiB push ({name})"] = report
                finally:
                    self.stop(server)
                    shutil.rmtree(folder, ignore_errors=True)
        big_path.unlink()
        for key, what in (("peak_worker_mib", "per worker"), ("peak_total_mib", "all processes")):
            for size in (s.blob, s.big):
                metric = self.metric(f"rss_{key}_{size // MiB}",
                                     f"peak RSS {what}, {size // MiB} MiB push", "MiB",
                                     higher_is_better=False)
                for name in pair:
                    metric.add(name, float(self.rss[f"{size // MiB} MiB push ({name})"][key]))  # type: ignore[arg-type]

    # -- report ----------------------------------------------------------------------------------

    def floors(self) -> list[tuple[str, bool]]:
        """Each floor of issue 6 and whether this run meets it."""
        out = []
        for key, metric in self.metrics.items():
            ratio = metric.ratio()
            if metric.floor is not None and ratio is not None:
                out.append((f"{metric.label}: {ratio:.2f}x >= {metric.floor}x", ratio >= metric.floor))
        for size in (self.sizes.blob, self.sizes.big):
            m = self.metrics.get(f"rss_peak_worker_mib_{size // MiB}")
            if m and m.median("ours") is not None:
                value = m.median("ours") or 0.0
                out.append((f"peak RSS per worker at {size // MiB} MiB: {value:.1f} MiB <= 64 MiB", value <= 64))
        small = self.metrics.get(f"rss_peak_worker_mib_{self.sizes.blob // MiB}")
        big = self.metrics.get(f"rss_peak_worker_mib_{self.sizes.big // MiB}")
        if small and big and small.median("ours") and big.median("ours"):
            a, b = small.median("ours") or 0.0, big.median("ours") or 0.0
            out.append((f"RSS flat: {a:.1f} MiB at {self.sizes.blob // MiB} MiB vs {b:.1f} MiB at "
                        f"{self.sizes.big // MiB} MiB (within 2 MiB)", abs(b - a) <= 2.0))
        return out

    def table(self) -> str:
        """The report: the issue's table, server CPU per unit of work, latency, limits, memory, floors."""
        lines = [_render(self._rows("speed", with_floor=True)),
                 "ratio: ours / distribution (for s and MiB: distribution / ours), so > 1 means ours is "
                 f"better; median of {self.sizes.runs} run(s); errors: ours / distribution", ""]
        if any(m.group == "cpu" for m in self.metrics.values()):
            lines += ["server CPU (user + system, all processes) per unit of work; ratio > 1: ours uses less",
                      _render(self._rows("cpu")), ""]
        if any(m.group == "latency" for m in self.metrics.values()):
            lines += ["p99 latency: small requests (wrk), probes under slow clients (bench/slowloris.py)",
                      _render(self._rows("latency")), ""]
        lines.append("machine limits (median):")
        for name, values in self.limits.items():
            lines.append(f"  {name}: {statistics.median(values):,.0f}")
        lines += ["", "memory (MiB; per process VmHWM, and the peak of the sampled sum):"]
        for name, report in self.rss.items():
            lines.append(f"  {name}: {json.dumps(report)}")
        floors = self.floors()
        if floors:
            lines += ["", "floors of issue 6:"]
            lines += [f"  [{'ok' if ok else 'MISSED'}] {text}" for text, ok in floors]
        lines += [f"note: {note}" for note in self.notes]
        busy = max(self.load.get("start", (0,))[0], self.load.get("end", (0,))[0])
        lines.append(f"load average (1 min) at start / end: {self.load['start'][0]:.2f} / "
                     f"{self.load.get('end', (float('nan'),))[0]:.2f}"
                     + ("; other work was running on this machine, so rates are noisy: compare the "
                        "CPU-per-work table" if busy > 1.0 else ""))
        return "\n".join(lines)

    def _rows(self, group: str, with_floor: bool = False) -> list[tuple[str, ...]]:
        head = ("metric", "unit", "ours", "distribution", "ratio") + (("floor", "errors") if with_floor else ())
        rows: list[tuple[str, ...]] = [head]
        for key, m in self.metrics.items():
            if m.group != group:
                continue
            ratio = m.ratio()
            other = _fmt(m.median("distribution"))
            if key == "pull_vs_nginx":
                other += " (nginx)"
            row: tuple[str, ...] = (m.label, m.unit, _fmt(m.median("ours")), other,
                                    "-" if ratio is None else f"{ratio:.2f}x")
            if with_floor:
                errors = "" if not any(m.errors.values()) else \
                    " / ".join(str(m.errors.get(k, 0)) for k in ("ours", "distribution"))
                row += ("-" if m.floor is None else f">={m.floor}x", errors)
            rows.append(row)
        return rows

    def as_json(self) -> dict[str, object]:
        return {
            "sizes": self.sizes.__dict__,
            "workers": self.args.workers, "threads": self.args.threads,
            "environment": environment(self.args),
            "metrics": {k: m.as_json() for k, m in self.metrics.items()},
            "limits": {k: {"runs": v, "median": statistics.median(v)} for k, v in self.limits.items()},
            "rss": self.rss,
            "floors": [{"floor": text, "met": ok} for text, ok in self.floors()],
            "notes": self.notes,
            "load_average": self.load,
        }


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _render(rows: list[tuple[str, ...]]) -> str:
    """Rows as an aligned text table: text columns left, numbers right, a rule under the head."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(row, widths))).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _first_line(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unavailable ({exc})"
    return ((proc.stdout or "") + (proc.stderr or "")).strip().splitlines()[0] if (proc.stdout or proc.stderr) else ""


def environment(args: argparse.Namespace) -> dict[str, object]:
    """What the numbers were measured on."""
    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import gunicorn
        gunicorn_version = gunicorn.__version__
    except ImportError:
        gunicorn_version = "missing"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
        "python": platform.python_version(), "gunicorn": gunicorn_version,
        "distribution": _first_line([args.registry_binary, "--version"]),
        "nginx": _first_line([args.nginx_binary, "-v"]),
        "wrk": _first_line(["wrk", "-v"]), "curl": _first_line(["curl", "--version"]),
        "checkout": _first_line(["git", "-C", str(Path(__file__).resolve().parent.parent),
                                 "describe", "--always", "--dirty"]),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny sizes and 1 s wrk runs (the smoke test)")
    parser.add_argument("--runs", type=int, help="runs per number; the median is reported (default 3)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (default 10)")
    parser.add_argument("--blob-mib", type=int, help="size of the pushed and pulled blob (default 512)")
    parser.add_argument("--big-mib", type=int, help="size of the big push for the memory check (default 2048)")
    parser.add_argument("--only", default=",".join(GROUPS),
                        help=f"comma-separated groups to run, of {','.join(GROUPS + OPTIONAL_GROUPS)} "
                             f"(default all but {','.join(OPTIONAL_GROUPS)})")
    parser.add_argument("--workers", type=int, help="--workers for our server (default: its own)")
    parser.add_argument("--threads", type=int, help="--threads for our server (default: its own)")
    parser.add_argument("--ours-arg", action="append", default=[],
                        help="extra argument for our server's serve command (repeatable)")
    parser.add_argument("--ours-command",
                        help="replace our serve command (with {host} {port} {root} filled in), "
                             "e.g. to try another WSGI server")
    parser.add_argument("--json", default="bench-results.json", help="where to write the results")
    parser.add_argument("--tmpdir", default=tempfile.gettempdir(),
                        help="folder for the temporary data folder (default: the system temp dir)")
    parser.add_argument("--registry-binary", default=shutil.which("docker-registry") or "docker-registry",
                        help="the Go registry (Debian package docker-registry)")
    parser.add_argument("--nginx-binary", default=shutil.which("nginx") or "/usr/sbin/nginx")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> Sizes:
    sizes = Sizes(**QUICK.__dict__) if args.quick else Sizes()
    if args.runs:
        sizes.runs = args.runs
    if args.seconds:
        sizes.seconds = args.seconds
    if args.blob_mib:
        sizes.blob = args.blob_mib * MiB
    if args.big_mib:
        sizes.big = args.big_mib * MiB
    if sizes.blob % sizes.chunks or sizes.blob < 64 or sizes.big < 64 or sizes.runs < 1:
        raise SystemExit("--blob-mib must split into 8 chunks; sizes and --runs must be positive")
    return sizes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = sizes_from(args)
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = set(groups) - set(GROUPS + OPTIONAL_GROUPS)
    if unknown:
        raise SystemExit(f"unknown groups: {sorted(unknown)}")
    missing = [tool for tool in (args.registry_binary, args.nginx_binary, "curl", "wrk") if not shutil.which(tool)]
    if missing:
        raise SystemExit(f"missing tools: {missing} (apt-get install docker-registry nginx-light curl wrk)")
    # A SIGTERM must still run the cleanup below (stop servers, delete the big files).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="registry-bench-", dir=args.tmpdir))
    bench = None
    try:
        bench = Bench(args, sizes, tmp)
        bench.run(groups)
        print(bench.table())
        Path(args.json).write_text(json.dumps(bench.as_json(), indent=2) + "\n")
        print(f"\nresults written to {args.json}")
        return 0
    except (clients.BenchError, RuntimeError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        if bench is not None:
            for server in bench.started:
                print(f"--- {server.name} log:\n{server.log_tail()}", file=sys.stderr)
        return 1
    finally:
        if bench is not None:
            bench.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
