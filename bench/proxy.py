"""Benchmark the pull-through cache: a 512 MiB blob through the cache, cold and warm, beside a
direct pull from the upstream, and how many requests the upstream got.

    python bench/proxy.py [--size MIB] [--runs N] [--clients N] [--json PATH] [--tmpdir DIR]

The upstream is this registry's standalone server (``serve --access-log``, filesystem storage);
the cache is the same server with ``--proxy up=<upstream>`` (one worker per core, 8 threads).
Every pull is ``curl`` to /dev/null:

* direct: GET from the upstream;
* cold: GET through a cache with empty storage (a new one each run): the bytes stream from the
  upstream to the client while the cache writes and hashes them;
* warm: the same GET again, now from the cache's filesystem (``sendfile``);
* cold, N clients: N curls at once against a new empty cache (``curl --parallel``).

Upstream requests are counted in the upstream's access log. Rates are MB/s (10^6 bytes/s), the
median of ``--runs``; the cache's peak RSS is sampled during the cold pulls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import clients  # noqa: E402
import servers  # noqa: E402

MiB = 1 << 20
REPO = "bench/big"


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH", "")]))
    return env


def start_cache(folder: Path, upstream: str) -> servers.Server:
    """A cache mirroring ``upstream`` below ``up/``, with empty storage in ``folder``."""
    folder.mkdir()
    port = servers.free_port()
    argv = [sys.executable, "-m", "docker_registry_wsgi", "serve", "--host", "127.0.0.1", "--port",
            str(port), "--root", str(folder / "data"), "--proxy", f"up={upstream}"]
    return servers._spawn("cache", argv, port, folder / "cache.log", "/v2/", _env())


def upstream_gets(log: Path, digest: str) -> int:
    """GETs of the blob in the upstream's access log so far."""
    pattern = re.compile(rf'"GET /v2/{re.escape(REPO)}/blobs/{re.escape(digest)} ')
    return sum(1 for line in log.read_text(errors="replace").splitlines() if pattern.search(line))


def parallel_pull(url: str, count: int, size: int) -> float:
    """``count`` GETs of ``url`` at once (one curl --parallel); the seconds until all ended."""
    argv = ["curl", "-sS", "--parallel", "--parallel-max", str(count), "-w", "%{http_code} %{size_download}\n"]
    for _ in range(count):
        argv += ["-o", "/dev/null", url]
    started = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=clients.CURL_TIMEOUT)
    seconds = time.perf_counter() - started
    answers = proc.stdout.split()
    if proc.returncode != 0 or answers != ["200", str(size)] * count:
        raise clients.BenchError(f"parallel GET {url}: {proc.stderr.strip()} {answers[:6]}")
    return seconds


def write_blob(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        left = size
        while left:
            block = os.urandom(min(8 * MiB, left))
            f.write(block)
            left -= len(block)
    return clients.sha256_file(path)


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    size = args.size * MiB
    blob = tmp / "blob.bin"
    digest = write_blob(blob, size)
    (tmp / "upstream").mkdir()
    upstream = servers.start_ours(tmp / "upstream", workers=None, threads=None, extra=["--access-log"])
    log = tmp / "upstream" / "ours.log"
    results: dict[str, Any] = {"size_mib": args.size, "runs": args.runs, "clients": args.clients,
                               "cache_server": "serve --proxy",
                               "direct_mb_s": [], "cold_mb_s": [], "warm_mb_s": [],
                               "cold_upstream_gets": [], "warm_upstream_gets": [],
                               "parallel_cold_seconds": [], "parallel_upstream_gets": [],
                               "cold_peak_rss_mib": [], "cold_peak_worker_mib": []}
    try:
        clients.push_monolithic(upstream.base, REPO, blob, digest)
        for n in range(args.runs):
            os.sync()
            results["direct_mb_s"].append(clients.pull(upstream.base, REPO, digest, size))
            cache = start_cache(tmp / f"cache-{n}", upstream.base)
            try:
                before = upstream_gets(log, digest)
                with servers.RssSampler(cache) as rss:
                    results["cold_mb_s"].append(clients.pull(cache.base, f"up/{REPO}", digest, size))
                peaks = rss.report()
                results["cold_peak_rss_mib"].append(peaks["peak_total_mib"])
                results["cold_peak_worker_mib"].append(peaks["peak_worker_mib"])
                results["cold_upstream_gets"].append(upstream_gets(log, digest) - before)
                before = upstream_gets(log, digest)
                results["warm_mb_s"].append(clients.pull(cache.base, f"up/{REPO}", digest, size))
                results["warm_upstream_gets"].append(upstream_gets(log, digest) - before)
            finally:
                cache.stop()
            shutil.rmtree(tmp / f"cache-{n}", ignore_errors=True)
            cache = start_cache(tmp / f"parallel-{n}", upstream.base)
            try:
                before = upstream_gets(log, digest)
                url = f"{cache.base}/v2/up/{REPO}/blobs/{digest}"
                results["parallel_cold_seconds"].append(parallel_pull(url, args.clients, size))
                results["parallel_upstream_gets"].append(upstream_gets(log, digest) - before)
            finally:
                cache.stop()
            shutil.rmtree(tmp / f"parallel-{n}", ignore_errors=True)
    finally:
        upstream.stop()
    return results


def report(results: dict[str, Any]) -> str:
    def median(key: str) -> float:
        return statistics.median(results[key])

    size = results["size_mib"]
    lines = [
        f"pull of a {size} MiB blob, median of {results['runs']} runs (cache: {results['cache_server']})",
        f"  direct from the upstream      {median('direct_mb_s'):8.0f} MB/s",
        f"  through the cache, cold       {median('cold_mb_s'):8.0f} MB/s   upstream GETs per pull: "
        f"{results['cold_upstream_gets']}",
        f"  cache peak RSS during the cold pull: {results['cold_peak_rss_mib']} MiB in all, "
        f"{results['cold_peak_worker_mib']} MiB per worker",
        f"  through the cache, warm       {median('warm_mb_s'):8.0f} MB/s   upstream GETs per pull: "
        f"{results['warm_upstream_gets']}",
        f"  cold, {results['clients']} clients at once      "
        f"{size * MiB * results['clients'] / median('parallel_cold_seconds') / 1e6:8.0f} MB/s in all "
        f"({median('parallel_cold_seconds'):.1f} s)   upstream GETs: {results['parallel_upstream_gets']}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=int, default=512, help="blob size in MiB (default 512)")
    parser.add_argument("--runs", type=int, default=3, help="runs; each number is their median (default 3)")
    parser.add_argument("--clients", type=int, default=8, help="clients of the parallel cold pull (default 8)")
    parser.add_argument("--json", default="bench-proxy-results.json", help="where to write the numbers")
    parser.add_argument("--tmpdir", default=tempfile.gettempdir(), help="where the temporary folder goes")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        print("bench/proxy.py needs curl", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = Path(tempfile.mkdtemp(prefix="registry-bench-proxy-", dir=args.tmpdir))
    try:
        results = run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(results))
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
