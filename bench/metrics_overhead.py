"""What metrics cost per request, in-process: the registry's own time with and without them.

    python bench/metrics_overhead.py [--requests 20000] [--rounds 5]

Calls the registry as a WSGI app (no server, no sockets) with a prebuilt environ, for the two
requests a fleet makes most: ``HEAD`` of a blob and ``GET`` of a manifest by tag, over
FilesystemStorage in a temporary folder. Three setups:

* ``off``: ``Registry(storage)``, what library users get by default;
* ``single``: ``RegistryMetrics`` and ``MeteredStorage``, values in memory;
* ``multiprocess``: the same with ``PROMETHEUS_MULTIPROC_DIR`` set, values in mmap'd files, as
  ``serve`` runs under gunicorn.

prometheus_client picks single- or multiprocess mode once, at import, so each metered mode runs
in a process of its own, beside an ``off`` registry in the same process. The two take turns
batch by batch (10 batches a case), timed in this thread's CPU time, so that a neighbour's load
on this shared machine adds to neither; a setup's number for a round is its fastest batch's
mean, and the numbers printed are medians over the rounds, in µs per request. Timing only:
nothing is asserted (docs/operations.rst quotes the numbers).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("off", "single", "multiprocess")
#: Each case's requests run in this many batches; a mode's number is its fastest batch's mean.
BATCHES = 10
ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _environ(method: str, path: str, **headers: str) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_HOST": "127.0.0.1:5000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return environ


def _call(app: Any, environ: dict[str, Any]) -> str:
    status: list[str] = []
    body = app(dict(environ), lambda s, h, e=None: status.append(s))
    for _ in body:
        pass
    close = getattr(body, "close", None)
    if close is not None:
        close()
    return status[0]


def _registry(folder: str, metered: bool) -> tuple[Any, dict[str, dict[str, Any]]]:
    """A registry over FilesystemStorage in ``folder`` holding one image; and the cases' environs."""
    from docker_registry_wsgi import Registry
    from docker_registry_wsgi.storage import FilesystemStorage

    storage: Any = FilesystemStorage(folder)
    metrics = None
    if metered:
        from docker_registry_wsgi.metrics import MeteredStorage, RegistryMetrics

        metrics = RegistryMetrics()
        storage = MeteredStorage(storage, metrics, "filesystem")
    app = Registry(storage, metrics=metrics)
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer" * 200
    digests = {}
    for data in (config, layer):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        push = _environ("POST", "/v2/bench/app/blobs/uploads/")
        push.update({"QUERY_STRING": f"digest={digest}", "CONTENT_LENGTH": str(len(data)),
                     "wsgi.input": io.BytesIO(data)})
        assert _call(app, push).startswith("201")
        digests[data] = digest
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digests[config], "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digests[layer], "size": len(layer)}],
    }).encode()
    put = _environ("PUT", "/v2/bench/app/manifests/latest")
    put.update({"CONTENT_LENGTH": str(len(manifest)), "CONTENT_TYPE": MANIFEST,
                "wsgi.input": io.BytesIO(manifest)})
    assert _call(app, put).startswith("201")
    return app, {
        "head_blob": _environ("HEAD", f"/v2/bench/app/blobs/{digests[layer]}"),
        "get_manifest": _environ("GET", "/v2/bench/app/manifests/latest", accept=MANIFEST),
    }


def measure(mode: str, requests: int) -> dict[str, dict[str, float]]:
    """CPU µs per request of each case, without metrics and with them as ``mode`` says.

    Both registries live in this process and take turns batch by batch, so that both see the
    same machine; the time is this thread's CPU time, which a neighbour's load does not add to.
    """
    from docker_registry_wsgi.metrics import multiprocess_dir

    assert (multiprocess_dir() is not None) == (mode == "multiprocess")
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="metrics-bench-") as folder:
        apps = {"off": _registry(os.path.join(folder, "off"), False),
                mode: _registry(os.path.join(folder, mode), True)}
        for case in ("head_blob", "get_manifest"):
            for app, environs in apps.values():
                for _ in range(200):  # warm caches and the labels' children
                    assert _call(app, environs[case]).startswith("200")
            batch = max(1, requests // BATCHES)
            times: dict[str, list[float]] = {name: [] for name in apps}
            for _ in range(BATCHES):
                for name, (app, environs) in apps.items():
                    environ = environs[case]
                    started = time.thread_time()
                    for _ in range(batch):
                        _call(app, environ)
                    times[name].append((time.thread_time() - started) / batch * 1e6)
            results[case] = {name: min(values) for name, values in times.items()}
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests per case and round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (each mode once a round)")
    parser.add_argument("--mode", choices=MODES[1:], help=argparse.SUPPRESS)  # one measurement
    args = parser.parse_args()
    if args.mode:
        print(json.dumps(measure(args.mode, args.requests)))
        return
    runs: dict[str, list[dict[str, dict[str, float]]]] = {mode: [] for mode in MODES[1:]}
    for round_ in range(args.rounds):
        for mode in (MODES[1:] if round_ % 2 == 0 else MODES[:0:-1]):
            env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
            with tempfile.TemporaryDirectory(prefix="metrics-bench-mp-") as folder:
                if mode == "multiprocess":
                    env["PROMETHEUS_MULTIPROC_DIR"] = folder
                out = subprocess.run([sys.executable, __file__, "--mode", mode, "--requests",
                                      str(args.requests)], env=env, check=True, capture_output=True,
                                     text=True, timeout=600).stdout
            runs[mode].append(json.loads(out))
    print(f"CPU µs per request (median of {args.rounds} rounds; {args.requests} requests a case and round)")
    print(f"{'':<14}{'mode':<14}{'off':>8}{'on':>8}{'added':>8}")
    for case in ("head_blob", "get_manifest"):
        for mode in MODES[1:]:
            off = statistics.median(run[case]["off"] for run in runs[mode])
            on = statistics.median(run[case][mode] for run in runs[mode])
            print(f"{case:<14}{mode:<14}{off:>8.1f}{on:>8.1f}{on - off:>8.1f}")


if __name__ == "__main__":
    main()
