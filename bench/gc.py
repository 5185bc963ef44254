"""Benchmark garbage collection: a run over a big synthetic registry, its memory, and its effect
on the latency of pushes and pulls that run at the same time.

    python bench/gc.py [--repositories 1000 --tags 10] [--storage filesystem|s3|both] [--quick]

For each storage backend (a folder; a SeaweedFS started for the run, see tests/support/seaweedfs.py):

1. Populate a registry through :class:`~docker_registry_wsgi.content.RegistryContent` (no HTTP):
   per tag a config and one or two small layers, one of them from a pool shared by all
   repositories, with usage records dated three days back (so garbage is past the 24 h grace).
   Then delete a quarter of the tags and some manifests by digest: garbage.
2. Time ``docker-registry-wsgi gc --delete-untagged`` in a subprocess: wall time and peak RSS
   (the child's own ``ru_maxrss``, from ``wait4``); then once more with nothing left to collect.
   The same on a registry a quarter of the size: the RSS difference per digest is what the
   collector's working set costs.
3. Delete another quarter of the tags, start the standalone server on the registry, and run a
   fixed number of small pushes (``POST ?digest=`` of 16 KiB, manifest ``PUT``) and pulls
   (``GET`` manifest by tag, ``GET`` a layer) from client threads: first alone, then while gc runs
   (in a loop, until the load ends). p50/p99 of each request, with and without gc.

Prints a table per backend and writes everything as JSON (``--json``, default
``bench-gc-results.json``). Everything runs on loopback, in one temporary folder that is deleted
at the end. See docs/benchmark.rst, "Garbage collection".
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import hashlib
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import servers  # noqa: E402

from docker_registry_wsgi.content import RegistryContent  # noqa: E402
from docker_registry_wsgi.digests import parse_digest  # noqa: E402
from docker_registry_wsgi.storage import Storage  # noqa: E402
from docker_registry_wsgi.usage import UsageRecords  # noqa: E402

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
THREE_DAYS = 3 * 86400
SUMMARY = re.compile(r"(\d+) manifests kept, (\d+) removed, \d+ tags removed; (\d+) blobs kept "
                     r"\(([^)]*)\), freed (\d+) \(([^)]*)\); (\d+) links")


@dataclass
class Sizes:
    """How big the registry and the load are."""

    repositories: int = 1000
    tags: int = 10
    shared_layers: int = 50  # the pool of layers every repository draws from
    layer_size: int = 1024  # the unique small layers
    shared_size: int = 2048
    pushes: int = 1000  # per load phase, over PUSHERS threads
    pulls: int = 2000  # per load phase, over PULLERS threads
    push_size: int = 16 * 1024


QUICK = Sizes(repositories=40, tags=4, shared_layers=8, pushes=60, pulls=120)
PUSHERS, PULLERS = 2, 2


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (``p`` in 0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else float("nan")


# -- where the registry lives ------------------------------------------------------------------


@dataclass
class Backend:
    """A storage backend: how to build a :class:`Storage` in this process, and the CLI options."""

    kind: str
    make: Callable[[str], Storage]  # registry name -> storage
    args: Callable[[str], list[str]]  # registry name -> serve/gc storage options
    workers: int  # threads that populate it


@contextlib.contextmanager
def backend(kind: str, tmp: Path) -> Iterator[Backend]:
    """A folder per registry under ``tmp``, or a SeaweedFS (one bucket, a prefix per registry)."""
    if kind == "filesystem":
        from docker_registry_wsgi.storage import FilesystemStorage

        # Populating does not need durability: the layout is the same without fsync.
        yield Backend("filesystem", lambda name: FilesystemStorage(tmp / name, fsync=False),
                      lambda name: ["--root", str(tmp / name)], workers=4)
        return
    from docker_registry_wsgi.storage.s3 import S3Storage
    from tests.support.seaweedfs import running_seaweedfs

    folder = tmp / "seaweedfs"
    folder.mkdir()
    with running_seaweedfs(folder) as weed:
        bucket = weed.create_bucket("registry")

        def make(name: str) -> Storage:
            return S3Storage(bucket, name, endpoint_url=weed.endpoint_url, region=weed.region,
                             access_key=weed.access_key, secret_key=weed.secret_key, max_pool_connections=32)

        def args(name: str) -> list[str]:
            return ["--storage", "s3", "--s3-bucket", bucket, "--s3-prefix", name,
                    "--s3-endpoint-url", weed.endpoint_url, "--s3-region", weed.region,
                    "--s3-access-key", weed.access_key, "--s3-secret-key", weed.secret_key]

        yield Backend("s3", make, args, workers=16)


# -- populating --------------------------------------------------------------------------------


@dataclass
class Registry:
    """What was populated: the tags still there (with a layer each to pull) and the counts."""

    name: str
    repositories: int
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> a layer digest
    manifests: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> manifest digest
    blobs: int = 0
    seconds: float = 0.0
    deleted_tags: int = 0
    deleted_manifests: int = 0


def _repository(i: int) -> str:
    return f"team-{i // 100:02d}/app-{i:04d}"


def populate(backend: Backend, name: str, sizes: Sizes, repositories: int) -> Registry:
    """Push ``repositories`` × ``sizes.tags`` small images, dated three days back."""
    started = time.monotonic()
    storage = backend.make(name)
    registry = Registry(name, repositories)
    old = UsageRecords(storage, clock=lambda: time.time() - THREE_DAYS)
    content = RegistryContent(storage, usage=old)
    rng = random.Random(f"shared-{name}")
    shared = [rng.randbytes(sizes.shared_size) for _ in range(sizes.shared_layers)]
    for data in shared:
        content.push_blob("base/layers", parse_digest(digest_of(data)), [data], len(data))
    lock = threading.Lock()

    def one(r: int) -> None:
        repo = _repository(r)
        local = random.Random(f"{name}-{r}")
        for t in range(sizes.tags):
            layers: list[tuple[str, int]] = []
            base = shared[(r * 7 + t) % len(shared)]
            base_digest = digest_of(base)
            content.mount_blob(repo, parse_digest(base_digest), None)
            layers.append((base_digest, len(base)))
            if t % 2 == 0:  # half the tags have a layer of their own
                own = local.randbytes(sizes.layer_size)
                content.push_blob(repo, parse_digest(digest_of(own)), [own], len(own))
                layers.append((digest_of(own), len(own)))
            config = json.dumps({"architecture": "amd64", "os": "linux", "created": f"{repo}:{t}",
                                 "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}).encode()
            content.push_blob(repo, parse_digest(digest_of(config)), [config], len(config))
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
            }).encode()
            content.put_manifest(repo, f"t{t}", manifest, OCI_MANIFEST)
            with lock:
                registry.tags[(repo, f"t{t}")] = layers[-1][0]
                registry.manifests[(repo, f"t{t}")] = digest_of(manifest)
                registry.blobs += len(layers) + 1  # config and manifest; shared layers counted again

    with concurrent.futures.ThreadPoolExecutor(backend.workers) as pool:
        for future in [pool.submit(one, r) for r in range(repositories)]:
            future.result()
    registry.blobs = sum(1 for _ in storage.list("blobs/"))
    storage.close()
    registry.seconds = time.monotonic() - started
    return registry


def make_garbage(backend: Backend, registry: Registry, fraction: float, seed: str) -> None:
    """Delete ``fraction`` of the remaining tags: four in five by tag, one in five by digest.

    By tag leaves an untagged manifest (``--delete-untagged`` collects it); by digest removes the
    manifest's revision. Either way its config and own layer become garbage.
    """
    storage = backend.make(registry.name)
    content = RegistryContent(storage)
    rng = random.Random(seed)
    doomed = [(key, rng.random() < 0.2)
              for key in rng.sample(sorted(registry.tags), round(len(registry.tags) * fraction))]
    lock = threading.Lock()

    def one(key: tuple[str, str], by_digest: bool) -> None:
        repo, tag = key
        content.delete_manifest(repo, parse_digest(registry.manifests[key]) if by_digest else tag)
        with lock:
            del registry.tags[key]
            if by_digest:
                registry.deleted_manifests += 1
            else:
                registry.deleted_tags += 1

    with concurrent.futures.ThreadPoolExecutor(backend.workers) as pool:
        for future in [pool.submit(one, key, by_digest) for key, by_digest in doomed]:
            future.result()
    storage.close()


# -- the collector -----------------------------------------------------------------------------


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH", "")]))
    return env


def run_gc(backend: Backend, name: str, log: Path) -> dict[str, Any]:
    """One ``gc --delete-untagged`` in a subprocess: wall time, peak RSS, exit status, summary."""
    argv = [sys.executable, "-m", "docker_registry_wsgi", "gc", *backend.args(name), "--delete-untagged",
            "--quiet"]
    with open(log, "ab") as out:
        started = time.monotonic()
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=_env(), start_new_session=True)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    summary = log.read_text(errors="replace").strip().splitlines()[-1]
    if process.returncode != 0 or not summary.startswith("gc: "):
        raise RuntimeError(f"gc exited {process.returncode}: {summary}")
    found = SUMMARY.search(summary)
    result: dict[str, Any] = {"seconds": round(seconds, 2), "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
                              "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2), "summary": summary}
    if found:
        result.update(manifests_kept=int(found.group(1)), manifests_removed=int(found.group(2)),
                      blobs_kept=int(found.group(3)), blobs_freed=int(found.group(5)),
                      bytes_freed=found.group(6), links_removed=int(found.group(7)))
    return result


class GcLoop:
    """gc runs one after another in a thread, until stopped (each run is finished, not killed)."""

    def __init__(self, backend: Backend, name: str, log: Path) -> None:
        self.backend, self.name, self.log = backend, name, log
        self.runs: list[dict[str, Any]] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            while not self.stop.is_set() and len(self.runs) < 1000:
                self.runs.append(run_gc(self.backend, self.name, self.log))
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc

    def __enter__(self) -> "GcLoop":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


# -- the load ----------------------------------------------------------------------------------


class Client:
    """One keep-alive HTTP connection to the server, timing each request."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=body, headers={"Content-Length": str(len(body)), **(headers or {})})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return 0, b"", time.perf_counter() - started
        return response.status, data, time.perf_counter() - started


@dataclass
class Load:
    """Latencies (seconds) of each kind of request in one phase, and the failures."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, kind: str, status: int, expected: int, seconds: float) -> bool:
        self.latencies.setdefault(kind, []).append(seconds)
        if status != expected:
            self.errors[kind] = self.errors.get(kind, 0) + 1
            return False
        return True

    def stats(self) -> dict[str, dict[str, float]]:
        return {kind: {"count": len(v), "p50_ms": round(percentile(v, 50) * 1e3, 2),
                       "p99_ms": round(percentile(v, 99) * 1e3, 2), "errors": self.errors.get(kind, 0)}
                for kind, v in self.latencies.items()}


KINDS = ("push blob (POST ?digest=, 16 KiB)", "push manifest (PUT)", "pull manifest (GET by tag)",
         "pull blob (GET)")


def run_load(port: int, registry: Registry, sizes: Sizes, label: str) -> Load:
    """``sizes.pushes`` pushes and ``sizes.pulls`` pulls from client threads; their latencies."""
    load = Load()
    lock = threading.Lock()
    kept = sorted(registry.tags)

    def pusher(n: int) -> None:
        client, rng = Client(port), random.Random(f"{label}-push-{n}")
        repo = f"load/{label}-{n}"
        config = json.dumps({"architecture": "amd64", "os": "linux", "load": f"{label}-{n}"}).encode()
        status, _, _ = client.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(config)}", config)
        if status != 201:
            raise RuntimeError(f"config push: HTTP {status}")
        for i in range(n, sizes.pushes, PUSHERS):
            data = rng.randbytes(sizes.push_size)
            status, _, seconds = client.request("POST", f"/v2/{repo}/blobs/uploads/?digest={digest_of(data)}", data,
                                                {"Content-Type": "application/octet-stream"})
            with lock:
                ok = load.add(KINDS[0], status, 201, seconds)
            if not ok:
                continue
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": digest_of(config), "size": len(config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": digest_of(data), "size": len(data)}],
            }).encode()
            status, _, seconds = client.request("PUT", f"/v2/{repo}/manifests/n{i}", manifest,
                                                {"Content-Type": OCI_MANIFEST})
            with lock:
                load.add(KINDS[1], status, 201, seconds)

    def puller(n: int) -> None:
        client, rng = Client(port), random.Random(f"{label}-pull-{n}")
        for _ in range(n, sizes.pulls, PULLERS):
            repo, tag = rng.choice(kept)
            status, body, seconds = client.request("GET", f"/v2/{repo}/manifests/{tag}",
                                                   headers={"Accept": OCI_MANIFEST})
            with lock:
                ok = load.add(KINDS[2], status, 200, seconds)
            if not ok:
                continue
            layer = rng.choice(json.loads(body)["layers"])["digest"]
            status, _, seconds = client.request("GET", f"/v2/{repo}/blobs/{layer}")
            with lock:
                load.add(KINDS[3], status, 200, seconds)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(PUSHERS + PULLERS) as pool:
        futures = [pool.submit(pusher, n) for n in range(PUSHERS)] + [pool.submit(puller, n) for n in range(PULLERS)]
        for future in futures:
            future.result()
    load.seconds = time.monotonic() - started
    return load


# -- one backend, start to end -----------------------------------------------------------------


def bench_backend(kind: str, sizes: Sizes, tmp: Path) -> dict[str, Any]:
    """Populate, collect (timed, two sizes), then the load with and without gc; the results."""
    out: dict[str, Any] = {"storage": kind}
    work = tmp / kind
    work.mkdir()
    with backend(kind, work) as where:
        small_n = max(1, sizes.repositories // 4)
        results: dict[str, Any] = {}
        for label, count in (("small", small_n), ("full", sizes.repositories)):
            print(f"[{kind}] populating {count} repositories × {sizes.tags} tags ...", file=sys.stderr, flush=True)
            registry = populate(where, label, sizes, count)
            make_garbage(where, registry, 0.25, f"round-1-{label}")
            print(f"[{kind}] {registry.blobs} blobs in {registry.seconds:.0f} s; gc ...", file=sys.stderr, flush=True)
            collect = run_gc(where, label, work / f"gc-{label}.log")
            steady = run_gc(where, label, work / f"gc-{label}.log")
            results[label] = {"repositories": count, "tags": count * sizes.tags, "blobs": registry.blobs,
                              "populate_seconds": round(registry.seconds, 1),
                              "deleted_tags": registry.deleted_tags,
                              "deleted_manifests": registry.deleted_manifests,
                              "gc": collect, "gc_again": steady}
            if label == "full":
                full = registry
        out["registries"] = results
        small, big = results["small"], results["full"]
        digests = (big["gc"]["blobs_kept"] + big["gc"]["blobs_freed"]
                   - small["gc"]["blobs_kept"] - small["gc"]["blobs_freed"])
        if digests > 0:
            out["rss_bytes_per_digest"] = {
                key: round((big[key]["peak_rss_mib"] - small[key]["peak_rss_mib"]) * 1024 * 1024 / digests)
                for key in ("gc", "gc_again")}
        make_garbage(where, full, 1 / 3, "round-2")  # a quarter of the tags populated
        print(f"[{kind}] load without gc, then with gc ...", file=sys.stderr, flush=True)
        folder = work / "server"
        folder.mkdir()
        server = servers.start_ours(folder, workers=None, threads=None, extra=where.args("full"))
        try:
            quiet = run_load(server.port, full, sizes, "quiet")
            with GcLoop(where, "full", work / "gc-load.log") as loop:
                busy = run_load(server.port, full, sizes, "busy")
            if loop.error is not None:
                raise loop.error
        finally:
            server.stop()
        out["load"] = {"without_gc": quiet.stats(), "with_gc": busy.stats(),
                       "seconds": {"without_gc": round(quiet.seconds, 1), "with_gc": round(busy.seconds, 1)},
                       "gc_runs_during_load": loop.runs}
    return out


def table(result: dict[str, Any], sizes: Sizes) -> str:
    """One backend's results as text."""
    lines = [f"== {result['storage']} =="]
    rows: list[tuple[str, ...]] = [("registry", "repos", "blobs", "gc s", "gc CPU s", "peak RSS MiB", "freed",
                                    "again s", "again MiB")]
    for label, r in result["registries"].items():
        gc, again = r["gc"], r["gc_again"]
        rows.append((label, str(r["repositories"]), f"{r['blobs']:,}", f"{gc['seconds']:.1f}",
                     f"{gc['cpu_seconds']:.1f}", f"{gc['peak_rss_mib']:.1f}",
                     f"{gc.get('blobs_freed', '?')} ({gc.get('bytes_freed', '?')})",
                     f"{again['seconds']:.1f}", f"{again['peak_rss_mib']:.1f}"))
    lines.append(_render(rows))
    per = result.get("rss_bytes_per_digest")
    if per:
        lines.append(f"peak RSS per blob/manifest digest (full minus small, over their digests): "
                     f"{per['gc']} bytes collecting, {per['gc_again']} bytes with nothing to collect")
    load = result["load"]
    runs = load["gc_runs_during_load"]
    lines += ["", f"load: {sizes.pushes} pushes ({PUSHERS} threads) and {sizes.pulls} pulls ({PULLERS} threads) "
              f"per phase: {load['seconds']['without_gc']:.0f} s alone, {load['seconds']['with_gc']:.0f} s with "
              f"gc; {len(runs)} gc run(s) beside it: "
              + "; ".join(f"{r['seconds']:.0f} s, freed {r.get('blobs_freed', '?')}, "
                          f"{_spared(r['summary'])} spared as recently used" for r in runs)]
    rows = [("request", "n", "p50 ms", "p50 ms (gc)", "p99 ms", "p99 ms (gc)", "errors")]
    for kind in KINDS:
        a, b = load["without_gc"].get(kind), load["with_gc"].get(kind)
        if not a or not b:
            continue
        rows.append((kind, str(a["count"]), f"{a['p50_ms']:.1f}", f"{b['p50_ms']:.1f}", f"{a['p99_ms']:.1f}",
                     f"{b['p99_ms']:.1f}", f"{a['errors']} / {b['errors']}"))
    lines.append(_render(rows))
    return "\n".join(lines)


def _spared(summary: str) -> str:
    found = re.search(r"(\d+) spared as recently used", summary)
    return found.group(1) if found else "?"


def _render(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for n, row in enumerate(rows):
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def environment() -> dict[str, Any]:
    cpu = ""
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    checkout = subprocess.run(["git", "-C", str(HERE.parent), "describe", "--always", "--dirty"],
                              capture_output=True, text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "checkout": checkout}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--repositories", type=int, help="repositories in the full registry (default 1000)")
    parser.add_argument("--tags", type=int, help="tags per repository (default 10)")
    parser.add_argument("--pushes", type=int, help="pushes per load phase (default 1000)")
    parser.add_argument("--pulls", type=int, help="pulls per load phase (default 2000)")
    parser.add_argument("--storage", choices=("filesystem", "s3", "both"), default="both")
    parser.add_argument("--quick", action="store_true", help="a tiny registry and load (the smoke test)")
    parser.add_argument("--json", default="bench-gc-results.json", help="where to write the results")
    parser.add_argument("--tmpdir", default=tempfile.gettempdir(), help="folder for the temporary data")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = Sizes(**QUICK.__dict__) if args.quick else Sizes()
    for key in ("repositories", "tags", "pushes", "pulls"):
        if getattr(args, key):
            setattr(sizes, key, getattr(args, key))
    if sizes.repositories < 4 or sizes.tags < 4:
        raise SystemExit("--repositories and --tags must be at least 4 (a quarter is deleted twice)")
    kinds = ["filesystem", "s3"] if args.storage == "both" else [args.storage]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up below
    tmp = Path(tempfile.mkdtemp(prefix="registry-gc-bench-", dir=args.tmpdir))
    results: dict[str, Any] = {"sizes": sizes.__dict__, "environment": environment(),
                               "load_average": {"start": os.getloadavg()}, "backends": {}}
    try:
        for kind in kinds:
            result = bench_backend(kind, sizes, tmp)
            results["backends"][kind] = result
            print(table(result, sizes) + "\n", flush=True)
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")  # kept if a later one fails
    except (RuntimeError, OSError) as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    results["load_average"]["end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"load average (1 min) at start / end: {results['load_average']['start'][0]:.2f} / "
          f"{results['load_average']['end'][0]:.2f}\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
