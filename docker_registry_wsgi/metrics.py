"""Prometheus metrics: requests by route, storage operations, auth refusals, garbage collection.

Off unless asked for: :class:`~docker_registry_wsgi.Registry` measures nothing without
``metrics=RegistryMetrics()``, and this module imports ``prometheus_client`` (the ``metrics``
extra) only when metrics are built, so that the standalone server can choose multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) before the library decides it at import. docs/operations.rst
lists every metric and its labels.
"""

from __future__ import annotations

import argparse
import atexit
import builtins
import glob
import hmac
import os
import re
import shutil
import tempfile
import time
from time import perf_counter
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, TypeVar

from .errors import MethodNotAllowed, NotFound, Unauthorized
from .extras import MissingExtra, require
from .options import Option, boolean, file, path, text
from .responses import error_reply
from .streams import BODY_BYTES_KEY
from .storage.base import (
    BlobReader,
    InvalidKey,
    KeyNotFound,
    Storage,
    UploadInfo,
    UploadState,
    VersionConflict,
)

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from .gc import GCReport
    from .handlers.context import Handler
    from .wsgi import WSGIApp

__all__ = [
    "RegistryMetrics",
    "MeteredStorage",
    "MetricsApp",
    "ServerMetrics",
    "ENDPOINT_KEY",
    "REQUEST_BUCKETS",
    "STORAGE_BUCKETS",
    "OPTIONS",
    "textfile_option",
    "child_exit",
    "write_gc_textfile",
    "write_purge_textfile",
]

#: The environ key where the registry records the route table's endpoint name of a request.
ENDPOINT_KEY = "docker_registry_wsgi.endpoint"
#: The ``route`` label of a request that matched no route (a 404 outside the API's paths).
UNMATCHED = "unmatched"

#: Request latency buckets (seconds): a HEAD answers in about a millisecond, a push of several
#: GB takes minutes.
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Storage operation buckets (seconds): a local stat takes microseconds, an S3 multipart
#: completion of a large blob can take minutes.
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_REFUSALS = frozenset({"401", "403", "429"})
#: The handlers that receive blob bytes: the ``registry_uploads_in_flight`` gauge counts them.
_UPLOAD_HANDLERS = frozenset({("uploads", "POST"), ("upload", "PATCH"), ("upload", "PUT")})
#: What a backend answers as part of the protocol: not storage errors.
_ANSWERS = (KeyNotFound, VersionConflict, InvalidKey)
#: The files prometheus_client writes in its multiprocess folder (and nothing else there).
_MULTIPROCESS_FILE = re.compile(r"(counter|gauge_\w+|histogram|summary)_\d+\.db")

_T = TypeVar("_T")


def _prometheus() -> Any:
    """The ``prometheus_client`` module, or :class:`~.extras.MissingExtra` naming the extra."""
    return require("prometheus_client", "metrics", "metrics")


def _require_prometheus() -> None:
    """:class:`~.extras.MissingExtra` unless prometheus_client is installed; it is not imported
    (see the module docstring)."""
    from importlib.util import find_spec

    try:
        found = find_spec("prometheus_client") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        _prometheus()  # raises the one-line error


def multiprocess_dir() -> str | None:
    """The folder prometheus_client's multiprocess mode writes to, or ``None`` if it is off here.

    The mode is fixed when ``prometheus_client`` is first imported: ``PROMETHEUS_MULTIPROC_DIR``
    set later does not turn it on in this process.
    """
    from prometheus_client import values

    if not getattr(values.ValueClass, "_multiprocess", False):
        return None
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class RegistryMetrics:
    """The registry's metrics, registered on ``registry`` (a private ``CollectorRegistry`` if omitted).

    Pass it as ``Registry(..., metrics=...)`` and to :class:`MeteredStorage`; expose
    ``self.registry`` with :class:`MetricsApp`. Under multiprocess mode the values go to the
    mmap'd files of this process, and :class:`MetricsApp` reads every process's files instead.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        prom = _prometheus()
        self.registry: CollectorRegistry = registry if registry is not None else prom.CollectorRegistry()
        on = {"registry": self.registry}
        self.requests = prom.Counter(
            "registry_http_requests", "Registry API requests by route, method and status.",
            ("route", "method", "status"), **on)
        self.duration = prom.Histogram(
            "registry_http_request_duration_seconds",
            "Time from a request's arrival to its response's start (a push's body included).",
            ("route", "method"), buckets=REQUEST_BUCKETS, **on)
        self.received = prom.Counter(
            "registry_http_received_bytes", "Bytes of request bodies.", ("route", "method"), **on)
        self.sent = prom.Counter(
            "registry_http_sent_bytes", "Bytes of response bodies (their Content-Length).",
            ("route", "method"), **on)
        self.uploads_in_flight = prom.Gauge(
            "registry_uploads_in_flight", "Upload requests (POST, PATCH, PUT) receiving blob bytes now.",
            multiprocess_mode="livesum", **on)
        self.auth_refusals = prom.Counter(
            "registry_auth_refusals", "Requests the auth hook refused, by route, status and reason.",
            ("route", "status", "reason"), **on)
        self.storage_duration = prom.Histogram(
            "registry_storage_operation_duration_seconds",
            "Time in storage operations (waiting for a client's upload bytes excluded).",
            ("backend", "operation"), buckets=STORAGE_BUCKETS, **on)
        self.storage_errors = prom.Counter(
            "registry_storage_errors", "Storage operations that failed, by error type.",
            ("backend", "operation", "error"), **on)
        self.gc_runs = prom.Counter(
            "registry_gc_runs", "Garbage collection runs recorded in this process.", ("dry_run",), **on)
        self.gc_freed_blobs = prom.Counter(
            "registry_gc_freed_blobs", "Blobs garbage collection deleted.", **on)
        self.gc_freed_bytes = prom.Counter(
            "registry_gc_freed_bytes", "Bytes garbage collection freed.", **on)
        self.gc_removals = prom.Counter(
            "registry_gc_removals", "Things garbage collection removed, by kind.", ("kind",), **on)
        self.gc_errors = prom.Counter(
            "registry_gc_errors", "Errors garbage collection reported.", **on)
        self.gc_duration = prom.Summary(
            "registry_gc_duration_seconds", "Time garbage collection runs took.", **on)
        self.uploads_purged = prom.Counter(
            "registry_uploads_purged", "Idle upload sessions cancelled by purges.", **on)
        # One entry per (route, method, status) seen: labels() costs more than a dict lookup.
        self._children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}

    # -- requests ---------------------------------------------------------------------------------

    def observe(self, app: WSGIApp, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """Call ``app`` (the registry) and record the request: count, latency, bytes, refusals."""
        started = perf_counter()
        seen: list[Any] = []

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen[:] = (status, headers)
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        body = app(environ, capture)
        elapsed = perf_counter() - started
        if not seen:
            return body
        status, headers = seen[0][:3], seen[1]
        method = environ.get("REQUEST_METHOD", "")
        if method not in _METHODS:
            method = "other"
        route = environ.get(ENDPOINT_KEY, UNMATCHED)
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = self._children.setdefault(key, (
                self.requests.labels(route, method, status), self.duration.labels(route, method),
                self.received.labels(route, method), self.sent.labels(route, method)))
        requests, duration, received, sent = children
        requests.inc()
        duration.observe(elapsed)
        if "HTTP_TRANSFER_ENCODING" in environ:  # no length to read off: what the registry read
            size = environ.get(BODY_BYTES_KEY, 0)
        else:
            size = _length(environ.get("CONTENT_LENGTH"))
        if size:
            received.inc(size)
        if method != "HEAD":
            for name, value in headers:
                if len(name) == 14 and name.lower() == "content-length":
                    size = _length(value)
                    if size:
                        sent.inc(size)
                    break
        if status in _REFUSALS:
            self.auth_refusals.labels(route, status, _refusal_reason(status, environ, headers)).inc()
        return body

    def instrument_handlers(self, handlers: dict[tuple[str, str], Handler]) -> None:
        """Wrap the handlers that receive blob bytes so that ``registry_uploads_in_flight`` counts them."""
        gauge = self.uploads_in_flight
        for key, handler in list(handlers.items()):
            if key in _UPLOAD_HANDLERS:
                handlers[key] = _in_flight(handler, gauge)

    # -- garbage collection and purges ------------------------------------------------------------

    def record_gc(self, report: GCReport) -> None:
        """Count a garbage collection run of this process (a dry run counts only as a run)."""
        self.gc_runs.labels("true" if report.dry_run else "false").inc()
        self.gc_duration.observe(report.seconds)
        if report.errors:
            self.gc_errors.inc(len(report.errors))
        if report.dry_run:
            return
        self.gc_freed_blobs.inc(report.blobs_freed)
        self.gc_freed_bytes.inc(report.bytes_freed)
        for kind, count in _removals_by_kind(report).items():
            self.gc_removals.labels(kind).inc(count)

    def record_purge(self, purged: Iterable[str] | int) -> None:
        """Count the upload sessions a purge of this process cancelled (its ids, or their number)."""
        self.uploads_purged.inc(purged if isinstance(purged, int) else sum(1 for _ in purged))


def _in_flight(handler: Handler, gauge: Any) -> Handler:
    def counted(ctx: Any) -> Any:
        gauge.inc()
        try:
            return handler(ctx)
        finally:
            gauge.dec()

    return counted


def _length(value: str | None) -> int:
    """A ``Content-Length`` value as a number of bytes; 0 when absent or malformed."""
    if not value:
        return 0
    try:
        return max(int(value), 0)
    except ValueError:
        return 0


def _refusal_reason(status: str, environ: Mapping[str, Any], headers: list[tuple[str, str]]) -> str:
    """Why the auth hook refused, from what the request sent and the challenge it got back."""
    if status == "403":
        return "denied"
    if status == "429":
        return "throttled"
    challenge = next((v for k, v in headers if k.lower() == "www-authenticate"), "")
    if 'error="insufficient_scope"' in challenge:
        return "insufficient_scope"
    if 'error="invalid_token"' in challenge:
        return "invalid_token"
    if not environ.get("HTTP_AUTHORIZATION"):
        return "missing_credentials"
    return "invalid_credentials"


def _removals_by_kind(report: GCReport) -> dict[str, int]:
    counts: dict[str, int] = {}
    for removal in report.removals:
        counts[removal.kind] = counts.get(removal.kind, 0) + 1
    return counts


# -- storage --------------------------------------------------------------------------------------


def _backend_name(storage: Storage) -> str:
    """``FilesystemStorage`` -> ``filesystem``: the ``backend`` label of a built-in backend."""
    name = type(storage).__name__
    return (name[: -len("Storage")] if name.endswith("Storage") and name != "Storage" else name).lower()


def _error_label(exc: BaseException) -> str:
    """The ``error`` label: the exception's type, and the S3 error code of a botocore ClientError."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str) and code:
            return f"{type(exc).__name__}:{code[:64]}"
    return type(exc).__name__


class MeteredStorage(Storage):
    """A storage backend that times every operation of ``storage`` and counts its failures.

    Delegation only: every call goes to ``storage`` unchanged, and attributes of its own
    (``root``, ``part_size``, ``bucket``) read through. Answers the protocol defines
    (:class:`KeyNotFound`, :class:`VersionConflict`, :class:`InvalidKey`) are not errors. A
    ``write_upload``'s time excludes the time spent waiting for the client's bytes, and an
    exception the client's stream raised there is not counted as a storage error. Listings are
    timed over their whole iteration. ``clock`` is the timer (seconds), injectable for tests.
    """

    def __init__(self, storage: Storage, metrics: RegistryMetrics, backend: str | None = None, *,
                 clock: Callable[[], float] = perf_counter) -> None:
        self.inner = storage
        self._clock = clock
        self.backend = backend or _backend_name(storage)
        self.min_chunk_size = storage.min_chunk_size
        self._errors = metrics.storage_errors
        self._observe = {
            operation: metrics.storage_duration.labels(self.backend, operation).observe
            for operation in _OPERATIONS
        }

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (during copying or unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def _failed(self, operation: str, exc: BaseException) -> None:
        if not isinstance(exc, _ANSWERS):
            self._errors.labels(self.backend, operation, _error_label(exc)).inc()

    def _timed(self, operation: str, call: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        started = self._clock()
        try:
            return call(*args, **kwargs)
        except Exception as exc:
            self._failed(operation, exc)
            raise
        finally:
            self._observe[operation](self._clock() - started)

    def _iterate(self, operation: str, call: Callable[..., Iterable[_T]], *args: Any, **kwargs: Any) -> Iterator[_T]:
        """Start a listing now (so that its errors come at once), time it over its iteration."""
        started = self._clock()
        try:
            iterator = iter(call(*args, **kwargs))
        except Exception as exc:
            self._failed(operation, exc)
            self._observe[operation](self._clock() - started)
            raise
        return self._drain(operation, iterator, self._clock() - started)

    def _drain(self, operation: str, iterator: Iterator[_T], spent: float) -> Iterator[_T]:
        try:
            while True:
                started = self._clock()
                try:
                    item = next(iterator)
                except StopIteration:
                    return
                finally:
                    spent += self._clock() - started
                yield item
        except Exception as exc:
            self._failed(operation, exc)
            raise
        finally:
            self._observe[operation](spent)

    # -- objects ---------------------------------------------------------------------------------

    def read(self, key: str) -> bytes:
        return self._timed("read", self.inner.read, key)

    def write(self, key: str, data: bytes | bytearray | memoryview, *, if_absent: bool = False) -> bool:
        return self._timed("write", self.inner.write, key, data, if_absent=if_absent)

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        return self._timed("read_versioned", self.inner.read_versioned, key)

    def swap(self, key: str, data: bytes, version: str | None) -> str:
        return self._timed("swap", self.inner.swap, key, data, version)

    def size(self, key: str) -> int:
        return self._timed("size", self.inner.size, key)

    def open(self, key: str, offset: int = 0) -> BlobReader:
        return self._timed("open", self.inner.open, key, offset)

    def delete(self, key: str) -> bool:
        return self._timed("delete", self.inner.delete, key)

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        return self._iterate("list", self.inner.list, prefix, start_after=start_after)

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self._iterate("list_sizes", self.inner.list_sizes, prefix)

    # -- uploads ---------------------------------------------------------------------------------

    def create_upload(self, upload_id: str, meta: bytes) -> UploadState:
        return self._timed("create_upload", self.inner.create_upload, upload_id, meta)

    def upload_state(self, upload_id: str) -> UploadState:
        return self._timed("upload_state", self.inner.upload_state, upload_id)

    def write_upload(
        self, upload_id: str, version: str, chunks: Iterable[bytes], meta: Callable[[], bytes]
    ) -> UploadState:
        source = _ClientChunks(chunks, self._clock)
        started = self._clock()
        try:
            return self.inner.write_upload(upload_id, version, source, meta)
        except Exception as exc:
            if not source.failed:
                self._failed("write_upload", exc)
            raise
        finally:
            self._observe["write_upload"](self._clock() - started - source.waited)

    def open_upload(self, upload_id: str, version: str) -> BlobReader:
        return self._timed("open_upload", self.inner.open_upload, upload_id, version)

    def commit_upload(self, upload_id: str, version: str, key: str) -> bool:
        return self._timed("commit_upload", self.inner.commit_upload, upload_id, version, key)

    def abort_upload(self, upload_id: str) -> None:
        return self._timed("abort_upload", self.inner.abort_upload, upload_id)

    def list_uploads(self) -> Iterator[UploadInfo]:
        return self._iterate("list_uploads", self.inner.list_uploads)

    def purge_uploads(self, idle: float, *, now: float | None = None) -> builtins.list[str]:
        return self._timed("purge_uploads", self.inner.purge_uploads, idle, now=now)

    # -- optional capabilities ------------------------------------------------------------------

    def redirect_url(self, key: str, *, method: str = "GET") -> str | None:
        return self._timed("redirect_url", self.inner.redirect_url, key, method=method)

    def close(self) -> None:
        self.inner.close()


#: The operations :class:`MeteredStorage` times (its ``operation`` label values).
_OPERATIONS = ("read", "write", "read_versioned", "swap", "size", "open", "delete", "list",
               "list_sizes", "create_upload", "upload_state", "write_upload", "open_upload",
               "commit_upload", "abort_upload", "list_uploads", "purge_uploads", "redirect_url")


class _ClientChunks:
    """The chunks of a ``write_upload``: notes the time spent waiting for them, and their failure."""

    def __init__(self, chunks: Iterable[bytes], clock: Callable[[], float]) -> None:
        self._chunks = iter(chunks)
        self._clock = clock
        self.waited = 0.0
        self.failed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        started = self._clock()
        try:
            return next(self._chunks)
        except StopIteration:
            raise
        except BaseException:
            self.failed = True
            raise
        finally:
            self.waited += self._clock() - started


# -- exposition -----------------------------------------------------------------------------------


class MetricsApp:
    """A WSGI app answering ``GET``/``HEAD`` on any path with the metrics in Prometheus' text format.

    ``registry``: the ``CollectorRegistry`` to expose (e.g. ``RegistryMetrics().registry``); when
    omitted, the files of every process in ``multiprocess_dir`` (default
    ``PROMETHEUS_MULTIPROC_DIR``), as gunicorn's workers write them. ``token``: require
    ``Authorization: Bearer <token>`` (401 otherwise). OpenMetrics and gzip when asked for.
    """

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        multiprocess_dir: str | None = None,
        token: str | None = None,
    ) -> None:
        prom = _prometheus()
        if registry is None:
            from prometheus_client.multiprocess import MultiProcessCollector

            path = multiprocess_dir or os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            if not path:
                raise ValueError("MetricsApp needs a registry, or a multiprocess folder "
                                 "(multiprocess_dir or PROMETHEUS_MULTIPROC_DIR)")
            registry = prom.CollectorRegistry()
            MultiProcessCollector(registry, path=path)
        self.registry = registry
        self._token = token.encode() if token else None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        from prometheus_client.exposition import choose_encoder

        method = environ.get("REQUEST_METHOD", "")
        if method not in ("GET", "HEAD"):
            refused = MethodNotAllowed({"method": method[:20]}, headers={"Allow": "GET, HEAD"})
            return error_reply(refused)(environ, start_response)
        if self._token is not None and not self._authorized(environ.get("HTTP_AUTHORIZATION", "")):
            unauthorized = Unauthorized(message="a bearer token is required for the metrics",
                                        challenge='Bearer realm="metrics"')
            return error_reply(unauthorized)(environ, start_response)
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        output = encoder(self.registry)
        headers = [("Content-Type", content_type), ("Cache-Control", "no-store")]
        if "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "").lower():
            import gzip

            output = gzip.compress(output)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(output))))
        start_response("200 OK", headers)
        return [] if method == "HEAD" else [output]

    def _authorized(self, header: str) -> bool:
        scheme, _, credentials = header.partition(" ")
        assert self._token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(credentials.strip().encode(), self._token)


# -- the standalone server ------------------------------------------------------------------------


def _bind(text: str) -> str:
    """``--metrics-bind``'s value, checked (the reader names the setting)."""
    try:
        _parse_bind(text)
    except ValueError:
        raise ValueError("expected HOST:PORT, e.g. 127.0.0.1:9102") from None
    return text


_GROUP = "metrics"

OPTIONS = (
    Option("metrics", boolean(), "serve Prometheus metrics at /metrics", default=True, group=_GROUP),
    Option("metrics-token", text(metavar="TOKEN"), "require 'Authorization: Bearer TOKEN' on "
           "/metrics; prefer the variable or --metrics-token-file to the command line, which other "
           "users can read", secret=True, group=_GROUP, default_text="none: /metrics is open"),
    Option("metrics-token-file", file(), "read the token from this file", group=_GROUP),
    Option("metrics-bind", text(_bind, "HOST:PORT, e.g. 127.0.0.1:9102", "HOST:PORT"),
           "serve /metrics only on this extra address, and not on the registry's", group=_GROUP,
           default_text="none: /metrics on the registry's address"),
    Option("metrics-dir", path("a folder", "FOLDER"), "folder for the workers' metric files, "
           "emptied at start", also_env=("PROMETHEUS_MULTIPROC_DIR",), group=_GROUP,
           default_text="a new temporary folder, removed at exit"),
)


def _parse_bind(text: str) -> tuple[str, int]:
    """``127.0.0.1:9102`` or ``[::1]:9102`` -> ``(host, port)``; ValueError naming the option."""
    host, sep, port = text.rpartition(":")
    if not (re.fullmatch(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]", host) and sep
            and re.fullmatch(r"[0-9]{1,5}", port) and 0 < int(port) < 65536):
        raise ValueError(f"--metrics-bind {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9102")
    return host.strip("[]"), int(port)


def _bind_port(bind: str) -> str | None:
    """The port of a gunicorn bind address (``host:port``), ``None`` for a unix socket or fd."""
    if bind.startswith(("unix:", "fd://")):
        return None
    _, sep, port = bind.rpartition(":")
    return port if sep and re.fullmatch(r"[0-9]{1,5}", port) else None


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn's ``child_exit`` hook: drop a dead worker's live gauges (``mark_process_dead``)."""
    from prometheus_client import multiprocess

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        multiprocess.mark_process_dead(worker.pid, path)


class ServerMetrics:
    """Metrics for the standalone server (``serve``), built from its options.

    In gunicorn's master, :meth:`configure_gunicorn` runs before any app is built: it turns on
    prometheus_client's multiprocess mode and adds the hooks and the metrics address to
    gunicorn's settings. In every worker (and in any process that builds the app),
    :meth:`instrument_storage`, :attr:`registry_metrics` and :meth:`wrap` make the metered app.
    Without multiprocess mode (the app built in a test, or by another server) it exposes this
    process's own values.
    """

    def __init__(self, *, token: str | None = None, bind: str | None = None, directory: str | None = None) -> None:
        self.token = token or None
        self.bind = _parse_bind(bind) if bind else None
        self.directory = directory
        self._registry_metrics: RegistryMetrics | None = None

    @classmethod
    def from_namespace(cls, namespace: argparse.Namespace) -> "ServerMetrics | None":
        """The metrics the options ask for; ``None`` with ``--no-metrics``.

        ValueError on a bad value, :class:`~.extras.MissingExtra` without prometheus_client.
        """
        if not namespace.metrics:
            return None
        try:
            _require_prometheus()
        except MissingExtra as exc:
            raise MissingExtra(f"{exc}, or serve with --no-metrics") from None
        token = namespace.metrics_token
        if namespace.metrics_token_file:
            if token:
                raise ValueError("--metrics-token and --metrics-token-file: give one")
            try:
                with open(namespace.metrics_token_file, encoding="utf-8") as file:
                    token = file.read().strip()
            except OSError as exc:
                raise ValueError(f"--metrics-token-file {namespace.metrics_token_file}: {exc.strerror}") from None
            if not token:
                raise ValueError(f"--metrics-token-file {namespace.metrics_token_file} is empty")
        return cls(token=token, bind=namespace.metrics_bind, directory=namespace.metrics_dir)

    def configure_gunicorn(self, options: dict[str, Any]) -> None:
        """Add to gunicorn's ``options`` (in the master, before any app is built) what metrics need.

        Creates (or empties) the multiprocess folder and sets ``PROMETHEUS_MULTIPROC_DIR`` for
        the workers; appends ``--metrics-bind`` to ``bind``; sets the ``child_exit`` hook (dead
        workers' gauges). A folder it created is removed when this process exits.
        """
        from sys import modules

        values = modules.get("prometheus_client.values")
        if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
            raise RuntimeError("prometheus_client was imported in single-process mode before the "
                               "server configured its metrics: configure_gunicorn must come first")
        created = None
        directory = self.directory
        if not directory:
            directory = created = tempfile.mkdtemp(prefix="registry-metrics-")
        else:
            os.makedirs(directory, exist_ok=True)
            for path in glob.glob(os.path.join(directory, "*.db")):
                if _MULTIPROCESS_FILE.fullmatch(os.path.basename(path)):
                    os.unlink(path)  # a previous run's values would be added to this run's
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        if self.bind is not None:
            binds = options.get("bind") or []
            binds = [binds] if isinstance(binds, str) else list(binds)
            port = str(self.bind[1])
            if any(_bind_port(bind) == port for bind in binds):
                raise ValueError(f"--metrics-bind port {port} is the registry's: choose another")
            host = f"[{self.bind[0]}]" if ":" in self.bind[0] else self.bind[0]
            options["bind"] = [*binds, f"{host}:{port}"]
        options["child_exit"] = _chain(options.get("child_exit"), child_exit)
        if created is not None:
            # At this process's exit however it ends (a configuration error after this call
            # included), and not at a forked worker's.
            atexit.register(_remove_folder, created, os.getpid())

    @property
    def registry_metrics(self) -> RegistryMetrics:
        """This process's :class:`RegistryMetrics`, for ``Registry(..., metrics=...)``."""
        if self._registry_metrics is None:
            self._registry_metrics = RegistryMetrics()
        return self._registry_metrics

    def instrument_storage(self, storage: Storage, backend: str | None = None) -> MeteredStorage:
        """``storage`` timed and counted under ``backend`` (``--storage``'s value)."""
        return MeteredStorage(storage, self.registry_metrics, backend)

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app`` with ``GET /metrics`` in front: on every address, or only on ``--metrics-bind``'s."""
        directory = multiprocess_dir()
        if directory is not None:
            exposition = MetricsApp(multiprocess_dir=directory, token=self.token)
        else:
            exposition = MetricsApp(self.registry_metrics.registry, token=self.token)
        return _MetricsRoute(app, exposition, str(self.bind[1]) if self.bind else None)


def _remove_folder(folder: str, owner: int) -> None:
    """Remove ``folder`` if this process is ``owner`` (atexit handlers also run in forked children)."""
    if os.getpid() == owner:
        shutil.rmtree(folder, ignore_errors=True)


def _chain(first: Callable[..., Any] | None, second: Callable[..., Any]) -> Callable[..., Any]:
    """A gunicorn hook calling ``first`` (if any) and then ``second`` with the same arguments."""
    if first is None:
        return second

    def both(*args: Any) -> None:
        first(*args)
        second(*args)

    return both


class _MetricsRoute:
    """``/metrics`` to the exposition app, the rest to ``app``; with a metrics port, by port.

    The port is the listening socket's, which gunicorn puts in ``SERVER_PORT`` (the ``Host``
    header does not change it). On the metrics port nothing but ``/metrics`` answers; on the
    others ``/metrics`` is the registry's 404.
    """

    def __init__(self, app: WSGIApp, exposition: MetricsApp, port: str | None) -> None:
        self.app = app
        self.exposition = exposition
        self.port = port

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if self.port is None:
            if path == "/metrics":
                return self.exposition(environ, start_response)
            return self.app(environ, start_response)
        if environ.get("SERVER_PORT") != self.port:
            return self.app(environ, start_response)
        if path == "/metrics":
            return self.exposition(environ, start_response)
        return error_reply(NotFound({"path": path[:200]}))(environ, start_response)


# -- command-line runs (gc, purge-uploads): the textfile collector pattern -----------------------


def textfile_option(variable: str) -> Option:
    """``--metrics-textfile FILE`` (variable ``variable``) for a command that runs and exits."""
    return Option("metrics-textfile", path("a file", "FILE"), "write this run's results to this file "
                  "in Prometheus' text format, for node_exporter's textfile collector",
                  env=variable, file=False, group="metrics")


class _Gauges:
    """A collector of fixed gauge values, so that writing a textfile touches no multiprocess file."""

    def __init__(self, gauges: list[tuple[str, str, dict[str, str], float]]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, Any] = {}
        for name, help_text, labels, value in self.gauges:
            family = families.get(name)
            if family is None:
                family = families[name] = GaugeMetricFamily(name, help_text, labels=sorted(labels))
            family.add_metric([labels[key] for key in sorted(labels)], value)
        return iter(families.values())


def _write_textfile(path: str, gauges: list[tuple[str, str, dict[str, str], float]]) -> None:
    """Write ``gauges`` to ``path`` atomically (a temporary file renamed over it)."""
    prom = _prometheus()
    registry = prom.CollectorRegistry(auto_describe=False)
    registry.register(_Gauges(gauges))
    prom.write_to_textfile(path, registry)


def write_gc_textfile(path: str, report: GCReport, *, now: float | None = None) -> None:
    """Write a real (not dry) garbage collection run's results as ``registry_gc_last_run_*`` gauges.

    A dry run changes nothing, this file included: call it for real runs only.
    """
    if report.dry_run:
        raise ValueError("a dry run's report is not written to the metrics textfile")
    kinds = _removals_by_kind(report)
    gauges: list[tuple[str, str, dict[str, str], float]] = [
        ("registry_gc_last_run_timestamp_seconds", "When the last garbage collection ended.", {},
         time.time() if now is None else now),
        ("registry_gc_last_run_duration_seconds", "How long the last garbage collection took.", {},
         report.seconds),
        ("registry_gc_last_run_freed_blobs", "Blobs the last garbage collection deleted.", {},
         report.blobs_freed),
        ("registry_gc_last_run_freed_bytes", "Bytes the last garbage collection freed.", {},
         report.bytes_freed),
        ("registry_gc_last_run_errors", "Errors the last garbage collection reported.", {},
         len(report.errors)),
    ]
    gauges += [("registry_gc_last_run_removals", "Things the last garbage collection removed, by kind.",
                {"kind": kind}, kinds.get(kind, 0))
               for kind in ("blob", "link", "manifest", "repository", "tag")]
    _write_textfile(path, gauges)


def write_purge_textfile(path: str, purged: Iterable[str] | int, *, now: float | None = None) -> None:
    """Write a ``purge-uploads`` run's results as ``registry_purge_last_run_*`` gauges."""
    count = purged if isinstance(purged, int) else sum(1 for _ in purged)
    _write_textfile(path, [
        ("registry_purge_last_run_timestamp_seconds", "When the last purge of idle uploads ended.", {},
         time.time() if now is None else now),
        ("registry_purge_last_run_cancelled_uploads", "Upload sessions the last purge cancelled.", {},
         count),
    ])
