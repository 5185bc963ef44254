"""Prometheus metrics (docs/operations.rst "Metrics"): requests by route, storage operations, auth
refusals, uploads in flight, GC results; exposition, protection, and gunicorn's multiprocess mode.

Every exposition is read back with prometheus_client's own text parser, so names, labels and
values are checked as Prometheus would scrape them.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
import requests
import webtest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.auth.issuer import TokenIssuer
from docker_registry_wsgi.auth.throttle import FailureThrottle
from docker_registry_wsgi.auth.token import TokenAuth, load_public_keys
from docker_registry_wsgi.gc import Collector, GCReport, Removal
from docker_registry_wsgi.metrics import (
    ENDPOINT_KEY,
    _length,
    MeteredStorage,
    MetricsApp,
    RegistryMetrics,
    ServerMetrics,
    add_arguments,
    add_textfile_argument,
    write_gc_textfile,
    write_purge_textfile,
)
from docker_registry_wsgi.routes import ROUTES
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage
from docker_registry_wsgi.testing import StorageSuite
from docker_registry_wsgi.testing.storage import ChunkFailure, meta, new_upload_id
from docker_registry_wsgi.usage import UsageRecords
from tests.handlers import RegistryClient, assert_error, path_of, raw_call, sha256
from tests.support.servers import ServerProcess, free_port

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Every metric a registry with metrics exposes, with its labels (docs/operations.rst's table).
EXPECTED = {
    "registry_http_requests": ("counter", {"route", "method", "status"}),
    "registry_http_request_duration_seconds": ("histogram", {"route", "method"}),
    "registry_http_received_bytes": ("counter", {"route", "method"}),
    "registry_http_sent_bytes": ("counter", {"route", "method"}),
    "registry_uploads_in_flight": ("gauge", set()),
    "registry_auth_refusals": ("counter", {"route", "status", "reason"}),
    "registry_storage_operation_duration_seconds": ("histogram", {"backend", "operation"}),
    "registry_storage_errors": ("counter", {"backend", "operation", "error"}),
    "registry_gc_runs": ("counter", {"dry_run"}),
    "registry_gc_freed_blobs": ("counter", set()),
    "registry_gc_freed_bytes": ("counter", set()),
    "registry_gc_removals": ("counter", {"kind"}),
    "registry_gc_errors": ("counter", set()),
    "registry_gc_duration_seconds": ("summary", set()),
    "registry_uploads_purged": ("counter", set()),
}


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by sample name and labels, via prometheus_client's parser."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[sample.name, frozenset(sample.labels.items())] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when absent (a counter not yet incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(metrics: RegistryMetrics) -> Samples:
    return parse(webtest.TestApp(MetricsApp(metrics.registry)).get("/metrics").text)


@pytest.fixture
def metrics() -> RegistryMetrics:
    return RegistryMetrics()


@pytest.fixture
def metered(storage: Storage, metrics: RegistryMetrics) -> MeteredStorage:
    return MeteredStorage(storage, metrics)


@pytest.fixture
def app(metered: MeteredStorage, metrics: RegistryMetrics) -> webtest.TestApp:
    return webtest.TestApp(Registry(metered, metrics=metrics))


# -- the storage protocol, through the wrapper ---------------------------------------------------


class _CountsOperations:
    """Each suite test ends with at least one operation timed (the wrapper is not bypassed)."""

    @pytest.fixture
    def metrics(self) -> RegistryMetrics:
        return RegistryMetrics()

    @pytest.fixture(autouse=True)
    def _timed_something(self, metrics: RegistryMetrics) -> Iterator[None]:
        yield
        counted = sum(v for (name, _), v in scrape(metrics).items()
                      if name == "registry_storage_operation_duration_seconds_count")
        assert counted > 0


class TestMeteredMemoryStorage(_CountsOperations, StorageSuite):
    @pytest.fixture
    def storage(self, metrics: RegistryMetrics) -> MeteredStorage:
        return MeteredStorage(MemoryStorage(), metrics)


class TestMeteredFilesystemStorage(_CountsOperations, StorageSuite):
    @pytest.fixture
    def storage(self, tmp_path: Path, metrics: RegistryMetrics) -> MeteredStorage:
        return MeteredStorage(FilesystemStorage(tmp_path / "root", fsync=False), metrics)

    @pytest.fixture
    def other_storage(self, storage: MeteredStorage, metrics: RegistryMetrics) -> MeteredStorage:
        """Another process over the same folder, metered too (``root`` reads through the wrapper)."""
        return MeteredStorage(FilesystemStorage(storage.root, fsync=False), metrics)


# -- requests -------------------------------------------------------------------------------------


def test_exposition_has_every_metric_with_its_labels(app: webtest.TestApp, metrics: RegistryMetrics) -> None:
    client = RegistryClient(app)
    client.push_image("lib/app")
    app.get("/v2/nope", status=404)
    families = {f.name: f for f in text_string_to_metric_families(
        webtest.TestApp(MetricsApp(metrics.registry)).get("/").text)}
    for name, (kind, labels) in EXPECTED.items():
        assert families[name].type == kind, name
        label_sets = {frozenset(s.labels) - {"le", "quantile"} for s in families[name].samples}
        assert label_sets <= {frozenset(labels)}, (name, label_sets)
    routes = {s.labels["route"] for s in families["registry_http_requests"].samples}
    assert routes <= {route.endpoint for route in ROUTES} | {"unmatched"}
    assert {"uploads", "manifest", "unmatched"} <= routes


def test_the_docs_list_every_metric(repo_root: Path, metrics: RegistryMetrics) -> None:
    """docs/operations.rst's table names each metric as scraped, with its type."""
    text = (repo_root / "docs" / "operations.rst").read_text()
    documented = dict(re.findall(r"^``(registry_\w+)``\s+(counter|gauge|histogram|summary)\s", text, re.M))
    exposed = {(f"{name}_total" if kind == "counter" else name): kind for name, (kind, _) in EXPECTED.items()}
    assert documented == exposed
    # Without multiprocess mode prometheus_client adds a "_created" time to each counter.
    families = {f.name: f.type for f in text_string_to_metric_families(
        webtest.TestApp(MetricsApp(metrics.registry)).get("/").text) if not f.name.endswith("_created")}
    assert families == {name: kind for name, (kind, _) in EXPECTED.items()}


def test_requests_by_route_method_and_status(app: webtest.TestApp, metrics: RegistryMetrics) -> None:
    data = b"x" * 1000
    digest = RegistryClient(app).push_blob("lib/app", data)
    app.head(f"/v2/lib/app/blobs/{digest}", status=200)
    app.head(f"/v2/lib/app/blobs/{digest}", status=200)
    app.get(f"/v2/lib/app/blobs/{digest}", status=200)
    missing = app.get("/v2/lib/app/blobs/sha256:" + "0" * 64, status=404)
    app.get("/v2/lib/app/manifests/latest", status=404)
    app.get("/elsewhere", status=404)
    assert raw_call(app.app, "BREW", "/v2/lib/app/tags/list").status == 405
    samples = scrape(metrics)
    requests_total = "registry_http_requests_total"
    assert value(samples, requests_total, route="uploads", method="POST", status="201") == 1
    assert value(samples, requests_total, route="blob", method="HEAD", status="200") == 2
    assert value(samples, requests_total, route="blob", method="GET", status="200") == 1
    assert value(samples, requests_total, route="blob", method="GET", status="404") == 1
    assert value(samples, requests_total, route="manifest", method="GET", status="404") == 1
    assert value(samples, requests_total, route="unmatched", method="GET", status="404") == 1
    # A method no route has is "other": clients cannot grow the label set.
    assert value(samples, requests_total, route="tags", method="other", status="405") == 1
    duration = "registry_http_request_duration_seconds"
    assert value(samples, f"{duration}_count", route="blob", method="HEAD") == 2
    assert value(samples, f"{duration}_bucket", route="blob", method="HEAD", le="+Inf") == 2
    assert value(samples, f"{duration}_sum", route="blob", method="HEAD") > 0
    # Bytes: the pushed body in, the blob out once (a HEAD sends no body).
    assert value(samples, "registry_http_received_bytes_total", route="uploads", method="POST") == 1000
    assert value(samples, "registry_http_sent_bytes_total", route="blob", method="GET") == 1000 + len(missing.body)
    assert value(samples, "registry_http_sent_bytes_total", route="blob", method="HEAD") == 0


def test_chunked_bodies_are_counted_as_read(metrics: RegistryMetrics) -> None:
    """No ``Content-Length``: the bytes read through ``wsgi.input`` are counted (RFC 9112 7.1)."""
    registry = Registry(MemoryStorage(), metrics=metrics)
    started = raw_call(registry, "POST", "/v2/lib/app/blobs/uploads/")
    location = started.header("Location")
    assert started.status == 202 and location is not None
    patched = raw_call(registry, "PATCH", path_of(location), b"y" * 12345, chunked=True)
    assert patched.status == 202
    samples = scrape(metrics)
    assert value(samples, "registry_http_received_bytes_total", route="upload", method="PATCH") == 12345


def test_the_endpoint_is_in_the_environ_for_any_middleware() -> None:
    seen: list[str] = []
    registry = Registry(MemoryStorage())

    def middleware(environ: dict[str, Any], start_response: Any) -> Any:
        result = registry(environ, start_response)
        seen.append(environ.get(ENDPOINT_KEY, "-"))
        return result

    webtest.TestApp(middleware).get("/v2/lib/app/tags/list", status=404)
    webtest.TestApp(middleware).get("/v2/", status=200)
    assert seen == ["tags", "base"]


class _HeldBody:
    """A chunked request body that stops after its first piece until the test releases it."""

    def __init__(self, first: bytes) -> None:
        self.first = first
        self.reading = threading.Event()
        self.release = threading.Event()

    def read(self, size: int = -1) -> bytes:
        if self.first:
            piece, self.first = self.first, b""
            return piece
        self.reading.set()
        assert self.release.wait(30), "the test never released the body"
        return b""


def test_uploads_in_flight_counts_requests_receiving_bytes(metrics: RegistryMetrics) -> None:
    registry = Registry(MemoryStorage(), metrics=metrics)
    location = raw_call(registry, "POST", "/v2/lib/app/blobs/uploads/").header("Location")
    assert location is not None
    body = _HeldBody(b"z" * 100)
    outcome: list[int] = []
    thread = threading.Thread(target=lambda: outcome.append(
        raw_call(registry, "PATCH", path_of(location), chunked=True, wsgi_input=body).status))
    thread.start()
    try:
        assert body.reading.wait(30)
        assert value(scrape(metrics), "registry_uploads_in_flight") == 1
        # Other requests are not uploads.
        raw_call(registry, "GET", "/v2/")
        assert value(scrape(metrics), "registry_uploads_in_flight") == 1
    finally:
        body.release.set()
        thread.join(30)
    assert outcome == [202]
    assert value(scrape(metrics), "registry_uploads_in_flight") == 0


# -- auth refusals --------------------------------------------------------------------------------


def _basic(user: str, password: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


class _PullOnly:
    def granted(self, identity: object, access: Access) -> frozenset[str]:
        return access.actions & {"pull"} if identity is not None else frozenset()


def test_basic_auth_refusals_by_reason(metrics: RegistryMetrics) -> None:
    users = {"alice": "right"}
    throttle = FailureThrottle(limit=2, window=600, address_limit=0)
    auth = BasicAuth(lambda user, password: user if users.get(user) == password else None,
                     policy=_PullOnly(), throttle=throttle)
    app = webtest.TestApp(Registry(MemoryStorage(), auth=auth, metrics=metrics))
    app.get("/v2/", status=401)                                                   # the login probe
    app.get("/v2/lib/app/tags/list", status=401)
    app.get("/v2/lib/app/tags/list", headers=_basic("alice", "wrong"), status=401)
    app.post("/v2/lib/app/blobs/uploads/", headers=_basic("alice", "right"), status=403)
    app.get("/v2/lib/app/tags/list", headers=_basic("alice", "wrong"), status=401)
    app.get("/v2/lib/app/tags/list", headers=_basic("alice", "wrong"), status=429)
    samples = scrape(metrics)
    refusals = "registry_auth_refusals_total"
    assert value(samples, refusals, route="base", status="401", reason="missing_credentials") == 1
    assert value(samples, refusals, route="tags", status="401", reason="missing_credentials") == 1
    assert value(samples, refusals, route="tags", status="401", reason="invalid_credentials") == 2
    assert value(samples, refusals, route="uploads", status="403", reason="denied") == 1
    assert value(samples, refusals, route="tags", status="429", reason="throttled") == 1
    assert sum(v for (name, _), v in samples.items() if name == refusals) == 6


def test_token_auth_refusals_by_reason(metrics: RegistryMetrics) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = TokenIssuer(key, issuer="issuer.test", service="registry.test",
                         verify=lambda user, password: None)
    auth = TokenAuth("https://auth.test/token", "registry.test", "issuer.test",
                     load_public_keys([], private_keys=[key]))
    app = webtest.TestApp(Registry(MemoryStorage(), auth=auth, metrics=metrics))
    token, _ = issuer.issue("alice", "registry.test", [Access.repository("lib/app", "pull")])
    app.get("/v2/lib/app/tags/list", headers={"Authorization": f"Bearer {token}"}, status=404)
    app.post("/v2/lib/app/blobs/uploads/", headers={"Authorization": f"Bearer {token}"}, status=401)
    app.get("/v2/lib/app/tags/list", headers={"Authorization": "Bearer not.a.token"}, status=401)
    samples = scrape(metrics)
    refusals = "registry_auth_refusals_total"
    assert value(samples, refusals, route="uploads", status="401", reason="insufficient_scope") == 1
    assert value(samples, refusals, route="tags", status="401", reason="invalid_token") == 1
    assert value(samples, "registry_http_requests_total", route="tags", method="GET", status="404") == 1


# -- storage operations ---------------------------------------------------------------------------


def test_storage_errors_by_backend_operation_and_type(small_disk: Path, metrics: RegistryMetrics) -> None:
    """A full disk is a storage error (507 UNAVAILABLE); a missing blob (404) is an answer."""
    storage = MeteredStorage(FilesystemStorage(small_disk / "root"), metrics)
    app = webtest.TestApp(Registry(storage, metrics=metrics))
    data = os.urandom(3 * 1024 * 1024)
    response = app.post(f"/v2/lib/app/blobs/uploads/?digest={sha256(data)}", data, status=507)
    assert_error(response, 507, "UNAVAILABLE")
    app.head("/v2/lib/app/blobs/sha256:" + "1" * 64, status=404)
    samples = scrape(metrics)
    errors = {dict(labels)["operation"]: v for (name, labels), v in samples.items()
              if name == "registry_storage_errors_total"}
    assert errors == {"write_upload": 1}
    assert value(samples, "registry_storage_errors_total", backend="filesystem",
                 operation="write_upload", error="StorageFull") == 1
    assert value(samples, "registry_storage_operation_duration_seconds_count",
                 backend="filesystem", operation="size") >= 1


def test_a_client_failing_mid_upload_is_not_a_storage_error(metrics: RegistryMetrics) -> None:
    storage = MeteredStorage(MemoryStorage(), metrics, backend="custom")
    upload_id = new_upload_id()
    state = storage.create_upload(upload_id, b"")

    def chunks() -> Iterator[bytes]:
        yield b"abc"
        raise ChunkFailure("client went away")

    with pytest.raises(ChunkFailure):
        storage.write_upload(upload_id, state.version, chunks(), meta("x"))
    storage.abort_upload(upload_id)
    samples = scrape(metrics)
    assert not [k for k in samples if k[0] == "registry_storage_errors_total"]
    assert value(samples, "registry_storage_operation_duration_seconds_count",
                 backend="custom", operation="write_upload") == 1


class _Clock:
    """A timer that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_write_upload_time_leaves_out_the_wait_for_the_client(metrics: RegistryMetrics) -> None:
    clock = _Clock()
    storage = MeteredStorage(MemoryStorage(), metrics, clock=clock)
    upload_id = new_upload_id()
    state = storage.create_upload(upload_id, b"")

    def slow_client() -> Iterator[bytes]:
        for piece in (b"one", b"two"):
            clock.now += 100.0  # the client takes 100 s to send each piece
            yield piece

    def slow_meta() -> bytes:
        clock.now += 0.5  # the storage's own work: counted
        return b"meta"

    storage.write_upload(upload_id, state.version, slow_client(), slow_meta)
    storage.abort_upload(upload_id)
    samples = scrape(metrics)
    labels = {"backend": "memory", "operation": "write_upload"}
    assert value(samples, "registry_storage_operation_duration_seconds_sum", **labels) == 0.5
    assert value(samples, "registry_storage_operation_duration_seconds_bucket", le="0.5", **labels) == 1
    assert value(samples, "registry_storage_operation_duration_seconds_bucket", le="0.25", **labels) == 0


def test_backend_labels_and_attributes_read_through(tmp_path: Path, metrics: RegistryMetrics) -> None:
    inner = FilesystemStorage(tmp_path / "root")
    storage = MeteredStorage(inner, metrics)
    assert storage.backend == "filesystem" and storage.root == inner.root
    assert MeteredStorage(MemoryStorage(), metrics).backend == "memory"
    storage.write("a/b", b"1")
    assert list(storage.list("a/")) == ["b"]
    samples = scrape(metrics)
    assert value(samples, "registry_storage_operation_duration_seconds_count",
                 backend="filesystem", operation="list") == 1


# -- GC and purges --------------------------------------------------------------------------------


def test_record_gc_counts_a_real_run(metrics: RegistryMetrics) -> None:
    storage = MemoryStorage()
    client = RegistryClient(webtest.TestApp(Registry(storage)))
    client.push_blob("lib/app", b"orphan one")
    client.push_blob("lib/app", b"orphan two!")
    later = time.time() + 48 * 3600
    dry = Collector(storage, dry_run=True, clock=lambda: later,
                    usage=UsageRecords(storage, clock=lambda: later)).run()
    metrics.record_gc(dry)
    report = Collector(storage, clock=lambda: later, usage=UsageRecords(storage, clock=lambda: later)).run()
    assert report.blobs_freed == 2 and not report.errors
    metrics.record_gc(report)
    metrics.record_purge(["a" * 16, "b" * 16])
    samples = scrape(metrics)
    assert value(samples, "registry_gc_runs_total", dry_run="true") == 1
    assert value(samples, "registry_gc_runs_total", dry_run="false") == 1
    assert value(samples, "registry_gc_freed_blobs_total") == 2
    assert value(samples, "registry_gc_freed_bytes_total") == len(b"orphan one") + len(b"orphan two!")
    assert value(samples, "registry_gc_removals_total", kind="blob") == 2
    assert value(samples, "registry_gc_duration_seconds_count") == 2
    assert value(samples, "registry_uploads_purged_total") == 2


def test_gc_and_purge_textfiles(tmp_path: Path) -> None:
    report = GCReport(blobs_freed=3, bytes_freed=4096, seconds=1.5, errors=["one"],
                      removals=[Removal("blob", None, "sha256:" + "a" * 64, 10),
                                Removal("tag", "lib/app", None), Removal("tag", "lib/app", None)])
    gc_file = tmp_path / "registry_gc.prom"
    write_gc_textfile(str(gc_file), report, now=1_700_000_000)
    samples = parse(gc_file.read_text())
    assert value(samples, "registry_gc_last_run_timestamp_seconds") == 1_700_000_000
    assert value(samples, "registry_gc_last_run_duration_seconds") == 1.5
    assert value(samples, "registry_gc_last_run_freed_blobs") == 3
    assert value(samples, "registry_gc_last_run_freed_bytes") == 4096
    assert value(samples, "registry_gc_last_run_errors") == 1
    assert value(samples, "registry_gc_last_run_removals", kind="tag") == 2
    assert ("registry_gc_last_run_removals", frozenset({("kind", "manifest")})) in samples
    with pytest.raises(ValueError, match="dry run"):
        write_gc_textfile(str(gc_file), GCReport(dry_run=True))
    purge_file = tmp_path / "registry_purge.prom"
    write_purge_textfile(str(purge_file), 7, now=1_700_000_001)
    samples = parse(purge_file.read_text())
    assert value(samples, "registry_purge_last_run_cancelled_uploads") == 7
    assert value(samples, "registry_purge_last_run_timestamp_seconds") == 1_700_000_001
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry_gc.prom", "registry_purge.prom"]


def test_textfile_argument_reads_its_variable() -> None:
    parser = argparse.ArgumentParser()
    add_textfile_argument(parser, "REGISTRY_GC_METRICS_TEXTFILE", {"REGISTRY_GC_METRICS_TEXTFILE": "/x.prom"})
    assert parser.parse_args([]).metrics_textfile == "/x.prom"
    assert parser.parse_args(["--metrics-textfile", "/y.prom"]).metrics_textfile == "/y.prom"


# -- the exposition app ---------------------------------------------------------------------------


def test_metrics_app_token_methods_and_formats(metrics: RegistryMetrics) -> None:
    app = webtest.TestApp(MetricsApp(metrics.registry, token="s3cret"))
    refused = app.get("/", status=401)
    assert_error(refused, 401, "UNAUTHORIZED")
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="metrics"'
    app.get("/", headers={"Authorization": "Bearer wrong"}, status=401)
    app.get("/", headers={"Authorization": "Basic s3cret"}, status=401)
    good = {"Authorization": "Bearer s3cret"}
    text = app.get("/", headers=good, status=200)
    assert text.content_type == "text/plain" and "registry_http_requests" in text.text
    head = app.head("/", headers=good, status=200)
    assert head.body == b"" and int(head.headers["Content-Length"]) == len(text.body)
    posted = app.post("/", headers=good, status=405)
    assert_error(posted, 405, "UNSUPPORTED")
    assert posted.headers["Allow"] == "GET, HEAD"
    open_metrics = app.get("/", headers={**good, "Accept": "application/openmetrics-text; version=1.0.0"})
    assert open_metrics.content_type == "application/openmetrics-text"
    assert open_metrics.text.rstrip().endswith("# EOF")
    # WebTest decodes gzip itself: look at the raw answer.
    zipped = raw_call(app.app, "GET", "/", headers={**good, "Accept-Encoding": "gzip"})
    assert zipped.header("Content-Encoding") == "gzip"
    assert "registry_http_requests" in gzip.decompress(zipped.body).decode()


def test_metrics_app_needs_a_registry_or_a_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="multiprocess"):
        MetricsApp()


# -- the standalone server's options and routing --------------------------------------------------


def _namespace(env: dict[str, str], *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, env)
    return parser.parse_args(list(argv))


def test_server_options_and_their_variables(tmp_path: Path) -> None:
    assert ServerMetrics.from_namespace(_namespace({})) is not None  # on by default in serve
    assert ServerMetrics.from_namespace(_namespace({}, "--no-metrics")) is None
    assert ServerMetrics.from_namespace(_namespace({"REGISTRY_METRICS": "false"})) is None
    assert ServerMetrics.from_namespace(_namespace({"REGISTRY_METRICS": "off"}, "--metrics")) is not None
    with pytest.raises(ValueError, match="REGISTRY_METRICS='maybe'"):
        ServerMetrics.from_namespace(_namespace({"REGISTRY_METRICS": "maybe"}))
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    configured = ServerMetrics.from_namespace(_namespace({
        "REGISTRY_METRICS_TOKEN_FILE": str(token_file), "REGISTRY_METRICS_BIND": "127.0.0.1:9102",
        "PROMETHEUS_MULTIPROC_DIR": "/run/metrics"}))
    assert configured is not None
    assert (configured.token, configured.bind, configured.directory) == (
        "from-file", ("127.0.0.1", 9102), "/run/metrics")
    assert ServerMetrics.from_namespace(_namespace({}, "--metrics-bind", "[::1]:9102")).bind == ("::1", 9102)  # type: ignore[union-attr]
    for bad in ("9102", "host:", "host:http", "host:70000", "::1:9102", "a b:9102", ":9102"):
        with pytest.raises(ValueError, match="--metrics-bind"):
            ServerMetrics.from_namespace(_namespace({}, "--metrics-bind", bad))
    with pytest.raises(ValueError, match="give one"):
        ServerMetrics.from_namespace(_namespace({"REGISTRY_METRICS_TOKEN": "t"}, "--metrics-token-file", str(token_file)))
    with pytest.raises(ValueError, match="--metrics-token-file"):
        ServerMetrics.from_namespace(_namespace({}, "--metrics-token-file", str(tmp_path / "missing")))


@given(st.from_regex(r"(127\.0\.0\.1|localhost|0\.0\.0\.0|\[::1\]|\[::\]|[a-z][a-z0-9.-]{0,30}):[1-9][0-9]{0,4}", fullmatch=True))
def test_metrics_bind_accepts_host_and_port(text: str) -> None:
    host, _, port = text.rpartition(":")
    if int(port) > 65535:
        with pytest.raises(ValueError, match="--metrics-bind"):
            ServerMetrics(bind=text)
    else:
        assert ServerMetrics(bind=text).bind == (host.strip("[]"), int(port))


@given(st.text(max_size=40))
def test_metrics_bind_parses_or_names_the_option(text: str) -> None:
    try:
        bound = ServerMetrics(bind=text or "x")
    except ValueError as exc:
        assert "--metrics-bind" in str(exc)
    else:
        assert bound.bind is not None and 0 < bound.bind[1] < 65536
        assert re.fullmatch(r"[A-Za-z0-9.-]+|[0-9A-Fa-f:.]+", bound.bind[0])


@given(st.one_of(st.none(), st.text(max_size=30), st.integers(-10**20, 10**20).map(str)))
def test_content_length_values_never_fail(text: str | None) -> None:
    """Whatever a client sends as Content-Length, counting it never raises nor goes negative."""
    counted = _length(text)
    assert counted >= 0
    if text is not None and text.strip().lstrip("+").isdigit() and text.isascii():
        assert counted == int(text)


def test_server_routing_by_port(tmp_path: Path) -> None:
    """With ``--metrics-bind`` only its port serves /metrics, and nothing else."""
    server_metrics = ServerMetrics(bind="127.0.0.1:9102", token="t")
    storage = server_metrics.instrument_storage(MemoryStorage(), "memory")
    app = webtest.TestApp(server_metrics.wrap(Registry(storage, metrics=server_metrics.registry_metrics)))
    on_metrics_port = {"SERVER_PORT": "9102"}
    assert_error(app.get("/metrics", status=404), 404, "UNSUPPORTED")
    app.get("/v2/", status=200)
    assert_error(app.get("/v2/", extra_environ=on_metrics_port, status=404), 404, "UNSUPPORTED")
    app.get("/metrics", extra_environ=on_metrics_port, status=401)
    text = app.get("/metrics", extra_environ=on_metrics_port, headers={"Authorization": "Bearer t"}).text
    assert value(parse(text), "registry_http_requests_total", route="base", method="GET", status="200") == 1
    # Without a metrics address, /metrics answers beside the registry.
    plain = ServerMetrics()
    plain_app = webtest.TestApp(plain.wrap(Registry(MemoryStorage(), metrics=plain.registry_metrics)))
    assert "registry_http_requests" in plain_app.get("/metrics").text


WITHOUT_PROMETHEUS = r'''
import argparse, sys
sys.modules["prometheus_client"] = None
from docker_registry_wsgi import Registry, health, metrics
from docker_registry_wsgi.extras import MissingExtra
from docker_registry_wsgi.storage import MemoryStorage
Registry(MemoryStorage())                      # metrics off: no prometheus_client needed
parser = argparse.ArgumentParser()
metrics.add_arguments(parser, {})
assert metrics.ServerMetrics.from_namespace(parser.parse_args(["--no-metrics"])) is None
for attempt in (metrics.RegistryMetrics, lambda: metrics.ServerMetrics.from_namespace(parser.parse_args([]))):
    try:
        attempt()
    except MissingExtra as exc:
        print(exc)
'''


def test_without_prometheus_client_the_message_names_the_extra(repo_root: Path) -> None:
    result = subprocess.run([sys.executable, "-c", WITHOUT_PROMETHEUS], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(repo_root)}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "metrics needs prometheus_client: pip install 'docker-registry-wsgi[metrics]'",
        "metrics needs prometheus_client: pip install 'docker-registry-wsgi[metrics]', "
        "or serve with --no-metrics",
    ]


def test_configure_gunicorn_refuses_a_single_process_import() -> None:
    """prometheus_client is imported here without PROMETHEUS_MULTIPROC_DIR: too late to switch."""
    with pytest.raises(RuntimeError, match="configure_gunicorn must come first"):
        ServerMetrics().configure_gunicorn({})


CONFIGURE = r'''
import json, os, sys
from docker_registry_wsgi.metrics import ServerMetrics
existing = lambda *args: print("existing hook", *args)
options = {"bind": "127.0.0.1:5000", "child_exit": existing}
ServerMetrics(bind="127.0.0.1:9102").configure_gunicorn(options)
folder = os.environ["PROMETHEUS_MULTIPROC_DIR"]
assert os.path.isdir(folder) and os.listdir(folder) == []
import prometheus_client.values
assert prometheus_client.values.ValueClass._multiprocess
class Worker: pid = 1234
open(os.path.join(folder, "gauge_livesum_1234.db"), "wb").close()
options["child_exit"](None, Worker())
assert not os.path.exists(os.path.join(folder, "gauge_livesum_1234.db"))
worker = os.fork()
if worker == 0:
    sys.exit(0)  # a worker's exit runs the inherited atexit handlers: the folder must stay
os.waitpid(worker, 0)
assert os.path.isdir(folder)
print(json.dumps({"bind": options["bind"], "folder": folder}))
try:
    ServerMetrics(bind="127.0.0.1:5000").configure_gunicorn({"bind": ["127.0.0.1:5000"]})
except ValueError as exc:
    print(exc)
'''


def test_configure_gunicorn_in_a_fresh_master(tmp_path: Path, repo_root: Path) -> None:
    """Run as gunicorn's master would: bind list, chained hooks, a temporary folder removed when
    the master exits (and not when a forked worker does)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")}
    env["PYTHONPATH"] = str(repo_root)
    result = subprocess.run([sys.executable, "-c", CONFIGURE], capture_output=True, text=True,
                            env=env, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("existing hook None <__main__.Worker object")  # chained, then ours
    reported = json.loads(lines[1])
    assert reported["bind"] == ["127.0.0.1:5000", "127.0.0.1:9102"]
    assert not os.path.exists(reported["folder"])  # removed when the "master" exited
    assert lines[2] == "--metrics-bind port 5000 is the registry's: choose another"


# -- gunicorn, two workers, one exposition --------------------------------------------------------


def _per_process_requests(folder: Path, scratch: Path) -> dict[int, float]:
    """Registry requests counted by each process, from its own ``counter_<pid>.db``."""
    counts: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        single = scratch / path.stem
        single.mkdir(parents=True)
        shutil.copy(path, single / path.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(single))
        total = sum(s.value for family in registry.collect() for s in family.samples
                    if s.name == "registry_http_requests_total")
        if total:
            counts[int(path.stem.split("_")[1])] = total
    return counts


def test_gunicorn_workers_aggregate_into_one_exposition(tmp_path: Path, repo_root: Path) -> None:
    """Two workers (serve's ThreadWorker), recycled every 3 requests so that several processes
    serve: /metrics on the metrics address sums every process's counters, dead ones included,
    and a dead worker's live gauge is dropped by the child_exit hook."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_4242.db").write_bytes(b"left by an earlier run")
    (folder / "README").write_text("not a metrics file: kept")
    port, metrics_port = free_port(), free_port()
    while metrics_port == port:
        metrics_port = free_port()
    env = {
        "PYTHONPATH": str(repo_root),
        "REGISTRY_ROOT": str(tmp_path / "data"),
        "REGISTRY_TEST_BIND": f"127.0.0.1:{port}",
        "REGISTRY_TEST_MAX_REQUESTS": "3",
        "REGISTRY_METRICS_BIND": f"127.0.0.1:{metrics_port}",
        "REGISTRY_METRICS_TOKEN": "scrape-token",
        "REGISTRY_METRICS_DIR": str(folder),
    }
    command = [sys.executable, "-m", "gunicorn", "-c", "python:tests.support.metrics_gunicorn",
               "tests.support.metrics_app:build()"]
    with ServerProcess(command, env=env, port=port, ready_path="/livez",
                       log_path=tmp_path / "gunicorn.log") as server:
        assert not (folder / "counter_4242.db").exists() and (folder / "README").exists()
        base = server.url
        data = b"layer bytes " * 100
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        pushed = requests.post(f"{base}/v2/lib/app/blobs/uploads/?digest={digest}", data=data, timeout=30)
        assert pushed.status_code == 201, pushed.text
        heads = 8
        for _ in range(heads):
            # A new connection each time: a recycled worker's successor takes the next one.
            assert requests.head(f"{base}/v2/lib/app/blobs/{digest}", timeout=30).status_code == 200
        assert requests.get(f"{base}/v2/lib/app/manifests/missing", timeout=30).status_code == 404

        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        assert requests.get(metrics_url, timeout=30).status_code == 401
        assert requests.get(f"http://127.0.0.1:{metrics_port}/v2/", timeout=30).status_code == 404
        on_registry_port = requests.get(f"{base}/metrics", timeout=30)
        assert on_registry_port.status_code == 404 and on_registry_port.json()["errors"][0]["code"] == "UNSUPPORTED"
        scraped = requests.get(metrics_url, headers={"Authorization": "Bearer scrape-token"}, timeout=30)
        assert scraped.status_code == 200
        samples = parse(scraped.text)
        total = "registry_http_requests_total"
        assert value(samples, total, route="uploads", method="POST", status="201") == 1
        assert value(samples, total, route="blob", method="HEAD", status="200") == heads
        assert value(samples, total, route="manifest", method="GET", status="404") == 1
        assert value(samples, total, route="unmatched", method="GET", status="404") == 1  # /metrics on :port
        assert value(samples, "registry_http_request_duration_seconds_count", route="blob", method="HEAD") == heads
        assert value(samples, "registry_http_received_bytes_total", route="uploads", method="POST") == len(data)
        assert value(samples, "registry_uploads_in_flight") == 0
        assert value(samples, "registry_storage_operation_duration_seconds_count",
                     backend="filesystem", operation="commit_upload") == 1

        # 12 registry requests, at most 3 per worker process: at least 4 processes counted them.
        per_process = _per_process_requests(folder, tmp_path / "scratch")
        assert len(per_process) >= 4, per_process
        assert sum(per_process.values()) == 1 + heads + 2

        # Live gauges belong to live workers only (child_exit ran for each recycled one).
        deadline = time.monotonic() + 30
        while True:
            live = set(server.child_pids())
            gauges = {int(p.stem.rsplit("_", 1)[1]) for p in folder.glob("gauge_livesum_*.db")}
            if gauges <= live or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert gauges <= live, (gauges, live)
        assert "Traceback" not in server.log_text()
