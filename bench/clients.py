"""The benchmark's clients: curl for transfers, wrk for small requests, http.client for setup.

The timed work is done by C programs (curl, wrk) so that the client is not what is measured;
Python only prepares files, starts the programs and reads their reports. Setup that is not
timed (small blobs, the manifest, tags) goes through http.client.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urljoin

__all__ = [
    "CurlResult",
    "curl",
    "push_monolithic",
    "push_chunked",
    "push_stream",
    "pull",
    "push_many",
    "wrk",
    "Setup",
    "sha256_file",
]

CURL_TIMEOUT = 600
OCTET = "Content-Type: application/octet-stream"
# A curl -w format: one line per transfer, fields separated by tabs.
_WRITE_OUT = "%{http_code}\t%{time_total}\t%{size_download}\t%{size_upload}\t%header{location}\n"


class BenchError(RuntimeError):
    """A request in the workload failed: the numbers of this run mean nothing."""


@dataclass
class CurlResult:
    """One transfer as curl reported it."""

    status: int
    seconds: float
    downloaded: int
    uploaded: int
    location: str


def _parse_write_out(text: str) -> list[CurlResult]:
    results = []
    for line in text.splitlines():
        if not line.strip():
            continue
        status, seconds, down, up, location = (line.split("\t") + [""] * 5)[:5]
        results.append(CurlResult(int(status), float(seconds), int(float(down)),
                                  int(float(up)), location.strip()))
    return results


def curl(url: str, *args: str, timeout: float = CURL_TIMEOUT) -> CurlResult:
    """Run one curl transfer to ``url`` with ``args``; the body goes to /dev/null."""
    argv = ["curl", "-sS", "-o", "/dev/null", "-H", "Expect:", "-w", _WRITE_OUT, *args, url]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise BenchError(f"curl {' '.join(args)} {url} failed: {proc.stderr.strip()}")
    (result,) = _parse_write_out(proc.stdout)
    return result


def _expect(result: CurlResult, status: int, what: str) -> CurlResult:
    if result.status != status:
        raise BenchError(f"{what}: HTTP {result.status}, expected {status}")
    return result


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if urlsplit(location).query else "?") + "digest=" + digest


def start_upload(base: str, repo: str) -> tuple[str, float]:
    """POST an upload; return its absolute location and the seconds it took."""
    r = _expect(curl(f"{base}/v2/{repo}/blobs/uploads/", "-X", "POST", "-H", "Content-Length: 0"),
                202, "POST upload")
    if not r.location:
        raise BenchError("POST upload: no Location header")
    return urljoin(base + "/", r.location), r.seconds


def push_monolithic(base: str, repo: str, path: Path, digest: str) -> float:
    """POST + PUT of the file's bytes; return the seconds both requests took (curl's clock)."""
    location, seconds = start_upload(base, repo)
    r = _expect(curl(_with_digest(location, digest), "-X", "PUT", "-H", OCTET, "-T", str(path)),
                201, "PUT monolithic")
    return seconds + r.seconds


def push_chunked(base: str, repo: str, chunks: list[Path], digest: str) -> float:
    """POST, one PATCH per chunk file with Content-Range, PUT; return the seconds taken."""
    location, seconds = start_upload(base, repo)
    offset = 0
    for chunk in chunks:
        size = chunk.stat().st_size
        r = _expect(curl(location, "-X", "PATCH", "-H", OCTET,
                         "-H", f"Content-Range: {offset}-{offset + size - 1}", "-T", str(chunk)),
                    202, "PATCH chunk")
        location = urljoin(location, r.location)
        offset += size
        seconds += r.seconds
    r = _expect(curl(_with_digest(location, digest), "-X", "PUT", "-H", "Content-Length: 0"),
                201, "PUT closing chunked upload")
    return seconds + r.seconds


def push_stream(base: str, repo: str, path: Path, digest: str) -> float:
    """POST, one PATCH whose body is the file sent ``Transfer-Encoding: chunked`` (no length), PUT.

    How docker, containerd and skopeo push a layer when they stream it; return the seconds taken.
    """
    location, seconds = start_upload(base, repo)
    r = _expect(curl(location, "-X", "PATCH", "-H", OCTET, "-H", "Transfer-Encoding: chunked",
                     "-T", str(path)), 202, "PATCH streamed (chunked transfer encoding)")
    location = urljoin(location, r.location)
    seconds += r.seconds
    r = _expect(curl(_with_digest(location, digest), "-X", "PUT", "-H", "Content-Length: 0"),
                201, "PUT closing streamed upload")
    return seconds + r.seconds


def pull(base: str, repo: str, digest: str, size: int,
         byte_range: tuple[int, int] | None = None) -> float:
    """GET a blob (or a byte range of it) to /dev/null; return MB/s (10**6 bytes per second)."""
    return get_rate(f"{base}/v2/{repo}/blobs/{digest}", size, byte_range)


def get_rate(url: str, size: int, byte_range: tuple[int, int] | None = None) -> float:
    """GET ``url`` to /dev/null, check the byte count, return MB/s."""
    if byte_range is None:
        r = _expect(curl(url, "-L"), 200, "GET blob")
        expected = size
    else:
        first, last = byte_range
        r = _expect(curl(url, "-L", "-H", f"Range: bytes={first}-{last}"), 206, "Range GET")
        expected = last - first + 1
    if r.downloaded != expected:
        raise BenchError(f"GET {url}: {r.downloaded} bytes, expected {expected}")
    return expected / r.seconds / 1e6


def push_many(base: str, repo: str, files: list[tuple[Path, str]]) -> tuple[float, int]:
    """Push every (file, digest) at once: one curl of parallel POSTs, one of parallel PUTs.

    Returns the wall time of both curl runs and the number of failed requests.
    """
    n = len(files)
    started = time.perf_counter()
    argv = ["curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", str(n),
            "-X", "POST", "-H", "Content-Length: 0", "-w", _WRITE_OUT]
    for _ in files:
        argv += ["-o", "/dev/null", f"{base}/v2/{repo}/blobs/uploads/"]
    posts = subprocess.run(argv, capture_output=True, text=True, timeout=CURL_TIMEOUT)
    created = [r for r in _parse_write_out(posts.stdout) if r.status == 202 and r.location]
    errors = n - len(created)
    argv = ["curl", "-sS", "--parallel", "--parallel-immediate", "--parallel-max", str(n),
            "-X", "PUT", "-H", OCTET, "-H", "Expect:", "-w", _WRITE_OUT]
    for r, (path, digest) in zip(created, files):
        argv += ["-o", "/dev/null", "-T", str(path), _with_digest(urljoin(base + "/", r.location), digest)]
    puts = subprocess.run(argv, capture_output=True, text=True, timeout=CURL_TIMEOUT)
    elapsed = time.perf_counter() - started
    errors += sum(1 for r in _parse_write_out(puts.stdout) if r.status != 201)
    errors += len(created) - len(_parse_write_out(puts.stdout))
    return elapsed, errors


_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
_TOTAL = re.compile(r"(\d+) requests in")
_NON2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)


def wrk(url: str, *, connections: int, seconds: float, threads: int = 1,
        headers: tuple[str, ...] = (), script: Path | None = None) -> dict[str, float]:
    """Run wrk against ``url``; return requests/s, request count, errors, p50/p99 latency (ms)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s",
            "--timeout", "5s", "--latency"]
    for header in headers:
        argv += ["-H", header]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0 or not _RPS.search(proc.stdout):
        raise BenchError(f"wrk failed: {proc.stdout}{proc.stderr}")
    out = proc.stdout
    errors = sum(int(x) for x in (_SOCKET.search(out).groups() if _SOCKET.search(out) else ()))
    errors += int(_NON2XX.search(out).group(1)) if _NON2XX.search(out) else 0
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    latency = {p: float(v) * unit[u] for p, v, u in _LATENCY.findall(out)}
    return {
        "rps": float(_RPS.search(out).group(1)),
        "requests": int(_TOTAL.search(out).group(1)) if _TOTAL.search(out) else 0,
        "errors": errors,
        "p50_ms": latency.get("50", 0.0),
        "p99_ms": latency.get("99", 0.0),
    }


def sha256_file(path: Path, block: int = 8 << 20) -> str:
    """``sha256:<hex>`` of a file, read in bounded blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class Setup:
    """Untimed registry setup over http.client: small blobs, a manifest, tags."""

    def __init__(self, base: str) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80

    def request(self, method: str, path: str, body: bytes = b"",
                headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        conn.request(method, path, body=body, headers={"Content-Length": str(len(body)), **(headers or {})})
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def push_blob(self, repo: str, data: bytes) -> str:
        """Push ``data`` as a blob (POST + PUT) and return its digest."""
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        r = self.request("POST", f"/v2/{repo}/blobs/uploads/")
        if r.status != 202:
            raise BenchError(f"setup POST upload: HTTP {r.status}")
        location = urlsplit(urljoin(f"http://{self.host}:{self.port}/", r.headers["Location"]))
        path = location.path + "?" + (location.query + "&" if location.query else "") + "digest=" + digest
        r = self.request("PUT", path, data, {"Content-Type": "application/octet-stream"})
        if r.status != 201:
            raise BenchError(f"setup PUT blob: HTTP {r.status}")
        return digest

    def push_manifest(self, repo: str, tags: list[str], layer: bytes) -> str:
        """Push a one-layer OCI image manifest under each of ``tags``; return its media type."""
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        config_digest = self.push_blob(repo, config)
        layer_digest = self.push_blob(repo, layer)
        media_type = "application/vnd.oci.image.manifest.v1+json"
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": layer_digest, "size": len(layer)}],
        }).encode()
        for tag in tags:
            r = self.request("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": media_type})
            if r.status != 201:
                raise BenchError(f"setup PUT manifest {tag}: HTTP {r.status}")
        return media_type

    def delete_blob(self, repo: str, digest: str) -> None:
        """Delete a blob to keep the data folder small; a registry may refuse, which is fine."""
        try:
            self.request("DELETE", f"/v2/{repo}/blobs/{digest}")
        except OSError:
            pass
