"""The standalone registry: the WSGI app built from options, served by gunicorn.

The worker is :class:`.worker.ThreadWorker`: gthread's, with request heads read in its event
loop, requests that wait on a slow client letting others run, and a receive timeout on bodies,
so that slow clients do not hold up the others (docs/deploy.rst). gthread because it streams ``Transfer-Encoding: chunked`` bodies and sets
``wsgi.input_terminated``, sends files with ``sendfile`` through ``wsgi.file_wrapper``, and does
not kill a long upload at its timeout (the sync worker does; waitress spools whole bodies to
disk first and refuses bodies over 1 GiB by default).
"""

from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
from typing import Any, Callable, Iterable, Protocol

from . import health, metrics, webhooks
from .app import Registry
from .gc import DEFAULT_GRACE, Collector, PeriodicCollector
from .retention import RetentionPolicy
from .storage.base import Storage
from .usage import UsageRecords
from .extras import require
from .usage import DEFAULT_TOUCH_INTERVAL
from .errors import NotFound
from .auth import config as auth_config
from .middleware import RegistryMiddleware, WSGIApp
from .storage import config as storage_config

__all__ = ["add_arguments", "build_app", "serve"]


def add_arguments(parser: argparse.ArgumentParser, env: dict[str, str] | None = None) -> None:
    """The server's own options (address, workers) plus those of storage and auth."""
    env = dict(os.environ) if env is None else env
    cores = os.cpu_count() or 1
    group = parser.add_argument_group("server")
    group.add_argument("--host", default=env.get("REGISTRY_HOST", "127.0.0.1"),
                       help="address to listen on (env REGISTRY_HOST; default 127.0.0.1)")
    group.add_argument("--port", type=int, default=int(env.get("REGISTRY_PORT", "5000")),
                       help="port to listen on (env REGISTRY_PORT; default 5000)")
    group.add_argument("--workers", type=int, default=int(env.get("REGISTRY_WORKERS", str(cores))),
                       help="worker processes (env REGISTRY_WORKERS; default: one per core)")
    group.add_argument("--threads", type=int, default=int(env.get("REGISTRY_THREADS", "8")),
                       help="requests a worker runs at once; one waiting on a slow client lets "
                            "another run meanwhile, in a thread of its own "
                            "(env REGISTRY_THREADS; default 8)")
    group.add_argument("--max-connections", type=_count,
                       default=env.get("REGISTRY_MAX_CONNECTIONS", "1000"),
                       help="open connections per worker, idle or not; at the cap, those that have "
                            "not sent a complete request for the longest are closed to make room "
                            "(env REGISTRY_MAX_CONNECTIONS; default 1000)")
    group.add_argument("--header-timeout", type=_seconds(zero=False),
                       default=env.get("REGISTRY_HEADER_TIMEOUT", "20"),
                       help="seconds a client has to send a whole request head, from connecting "
                            "or from the first byte of a kept-alive connection's next request "
                            "(env REGISTRY_HEADER_TIMEOUT; default 20)")
    group.add_argument("--body-timeout", type=_seconds(zero=True),
                       default=env.get("REGISTRY_BODY_TIMEOUT", "60"),
                       help="seconds a request body may send nothing before the request fails, "
                            "0 for no limit; a slow but steady body is not cut "
                            "(env REGISTRY_BODY_TIMEOUT; default 60)")
    group.add_argument("--access-log", action="store_true",
                       default=env.get("REGISTRY_ACCESS_LOG", "") not in ("", "0", "false"),
                       help="log every request to stderr (env REGISTRY_ACCESS_LOG)")
    group.add_argument("--delete", dest="delete_enabled", action=argparse.BooleanOptionalAction,
                       default=env.get("REGISTRY_DELETE_ENABLED", "true"),
                       help="allow deleting manifests, tags and blobs; --no-delete answers 405 "
                            "UNSUPPORTED (env REGISTRY_DELETE_ENABLED=false)")
    group.add_argument("--touch-interval", type=float, metavar="SECONDS",
                       default=float(env.get("REGISTRY_TOUCH_INTERVAL", str(DEFAULT_TOUCH_INTERVAL))),
                       help="rewrite a blob's usage record at most this often; gc's --grace must "
                            "be longer (env REGISTRY_TOUCH_INTERVAL; default %(default)g)")
    collect = parser.add_argument_group("garbage collection")
    collect.add_argument("--gc-interval", type=float, metavar="HOURS",
                         default=float(env.get("REGISTRY_GC_INTERVAL", "0")),
                         help="collect garbage every HOURS in one of the workers (env "
                              "REGISTRY_GC_INTERVAL; default 0: never, run `gc` from cron)")
    collect.add_argument("--gc-grace", type=float, metavar="HOURS",
                         default=float(env.get("REGISTRY_GC_GRACE", str(DEFAULT_GRACE / 3600))),
                         help="the periodic collection's grace period (env REGISTRY_GC_GRACE; "
                              "default %(default)g)")
    collect.add_argument("--gc-delete-untagged", action="store_true",
                         default=env.get("REGISTRY_GC_DELETE_UNTAGGED", "") in ("1", "true", "yes"),
                         help="the periodic collection also deletes untagged manifests")
    collect.add_argument("--gc-retention", metavar="FILE", default=env.get("REGISTRY_GC_RETENTION"),
                         help="retention rules for the periodic collection (env REGISTRY_GC_RETENTION)")
    storage_config.add_arguments(parser, env)
    auth_config.add_arguments(parser, env)
    webhooks.add_arguments(parser, env)
    health.add_arguments(parser, env)
    metrics.add_arguments(parser, env)


def _count(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1: {text!r}")
    return value


def _seconds(zero: bool) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds, above 0 (or also 0 when ``zero``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
            raise argparse.ArgumentTypeError(f"must be a number of seconds {'>=' if zero else '>'} 0: {text!r}")
        return value
    return parse


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Paths beside ``/v2`` and the extra apps: the registry's own 404 error."""
    return NotFound({"path": environ.get("PATH_INFO", "")[:200]}).response()(environ, start_response)


def _boolean(value: bool | str, variable: str) -> bool:
    """A flag's value: a bool from the command line, or its environment variable's text."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{variable}={value!r}: expected true or false")


class StartupFailure(Exception):
    """The storage cannot be reached at start (and ``--start-degraded`` was not given)."""


class Background(Protocol):
    """A job a worker runs beside the app: the webhook dispatcher, the periodic collector."""

    def start(self) -> None: ...

    def stop(self, timeout: float = ...) -> None: ...


def build_app(namespace: argparse.Namespace, background: list[Background] | None = None) -> WSGIApp:
    """The WSGI app the options describe: the registry, and any extra app (token issuer) beside it.

    Jobs to run beside it (webhook delivery, periodic garbage collection) are appended to
    ``background``, not started: the caller starts them in each worker, after the fork.
    """
    delete_enabled = _boolean(namespace.delete_enabled, "REGISTRY_DELETE_ENABLED")
    server_metrics = metrics.ServerMetrics.from_namespace(namespace)  # None with --no-metrics
    storage = storage_config.build(namespace)
    if server_metrics is not None:
        storage = server_metrics.instrument_storage(storage, namespace.storage)
    auth, extra = auth_config.build(namespace)
    registry = Registry(storage=storage, auth=auth, delete_enabled=delete_enabled,
                        touch_interval=namespace.touch_interval,
                        metrics=server_metrics.registry_metrics if server_metrics else None)
    hooks = webhooks.build(namespace)
    if hooks is not None:
        dispatcher = webhooks.install(registry, hooks)
        if background is not None:
            background.append(dispatcher)
    if namespace.gc_interval > 0:
        periodic = _periodic_collector(namespace, storage)
        if background is not None:
            background.append(periodic)
    app: WSGIApp = registry if not extra else RegistryMiddleware(_not_found, registry, extra)
    app = health.HealthApp(storage, timeout=namespace.readiness_timeout, fallback=app)
    return server_metrics.wrap(app) if server_metrics is not None else app


def _periodic_collector(namespace: argparse.Namespace, storage: Storage) -> PeriodicCollector:
    retention = RetentionPolicy.from_file(namespace.gc_retention) if namespace.gc_retention else None
    usage = UsageRecords(storage, touch_interval=namespace.touch_interval)

    def make() -> Collector:
        return Collector(storage, grace=namespace.gc_grace * 3600, usage=usage,
                         delete_untagged=namespace.gc_delete_untagged, retention=retention)

    make()  # a grace period too short for the touch interval fails now, not in a worker
    return PeriodicCollector(storage, namespace.gc_interval * 3600, make)


def serve(namespace: argparse.Namespace) -> None:
    """Run gunicorn (this package's gthread worker) in this process until it is stopped."""
    require("gunicorn", "server", "the standalone server")
    from gunicorn.app.base import BaseApplication

    from .worker import ThreadWorker

    workers = namespace.workers
    if namespace.storage == "memory" and workers != 1:
        logging.getLogger("docker_registry_wsgi").warning(
            "memory storage is per process: running one worker instead of %d", workers)
        workers = 1
    options = {
        "bind": f"{namespace.host}:{namespace.port}",
        "workers": workers,
        "threads": namespace.threads,
        "worker_connections": namespace.max_connections,
        "worker_class": ThreadWorker.configured(header_timeout=namespace.header_timeout,
                                                body_timeout=namespace.body_timeout),
        "keepalive": 75,
        "timeout": 120,
        "accesslog": "-" if namespace.access_log else None,
        "errorlog": "-",
        "loglevel": "info",
        # gunicorn 27's control socket is one path per user: servers would share it.
        "control_socket_disable": True,
    }
    server_metrics = metrics.ServerMetrics.from_namespace(namespace)
    if server_metrics is not None:
        server_metrics.configure_gunicorn(options)  # before anything imports prometheus_client
    failure = health.startup_failure(namespace, lambda: storage_config.build(namespace))
    if failure is not None:
        raise StartupFailure(failure)
    # Fail on a bad configuration now, in the master, not in every worker.
    build_app(namespace)

    class _Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> WSGIApp:
            # In each worker, after the fork: threads started in the master would not survive it.
            background: list[Background] = []
            app = build_app(namespace, background)
            for job in background:
                job.start()
                atexit.register(job.stop, 10)
            return app

    _Server().run()
