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
import os
import shlex
import ssl
from typing import Any, Callable, Iterable, Mapping, Protocol

from . import health, logs, metrics, webhooks
from .app import Registry
from .auth import config as auth_config
from .errors import NotFound
from .extras import MissingExtra, require
from .gc import DEFAULT_GRACE, Collector, PeriodicCollector
from .middleware import RegistryMiddleware, WSGIApp
from .options import CONFIG, Option, boolean, file, host, integer, number, tables
from .proxy import config as proxy_config
from .proxy.prune import pruning
from .responses import error_reply
from .retention import RetentionPolicy
from .storage import config as storage_config
from .storage.base import Storage
from .usage import DEFAULT_TOUCH_INTERVAL, UsageRecords
from .version import __version__

__all__ = ["OPTIONS", "TLS_OPTIONS", "GC_OPTIONS", "TOUCH_INTERVAL", "SERVE_OPTIONS", "build_app", "check", "serve", "gunicorn_settings",
           "StartupFailure"]

_SERVER, _TLS, _GC = "server", "TLS", "garbage collection"


def _retention_rules(path: str) -> None:
    RetentionPolicy.from_file(path)


#: gunicorn settings that ``serve``'s own options decide, and the option to use instead.
OWNED_SETTINGS = {
    "bind": "--host and --port", "workers": "--workers", "threads": "--threads",
    "worker_connections": "--max-connections", "worker_class": "nothing: serve runs its own worker",
    "accesslog": "--access-log", "errorlog": "--log-format (every line goes to stderr)",
    "loglevel": "--log-level", "logger_class": "--log-format", "logconfig": "--log-format",
    "logconfig_dict": "--log-format", "logconfig_json": "--log-format",
    "certfile": "--tls-cert", "keyfile": "--tls-key", "child_exit": "nothing: serve's metrics use it",
    "config": "the [gunicorn] table of the registry's configuration file",
    "wsgi_app": "nothing: serve runs the registry",
}


def _gunicorn_table(table: dict[str, Any]) -> dict[str, Any]:
    """The ``[gunicorn]`` table: each setting known to gunicorn, not one of serve's, and valid."""
    return gunicorn_settings(table, "")


#: Shared with the ``gc`` command, whose grace period must be longer.
TOUCH_INTERVAL = Option("touch-interval", number(0, unit="seconds"), "rewrite a blob's usage record "
                        "at most this often; gc's --grace must be longer",
                        default=DEFAULT_TOUCH_INTERVAL, group=_SERVER)

#: The server's own options: address, workers, timeouts, switches.
OPTIONS = (
    Option("host", host(), "address to listen on; :: or 0.0.0.0 for every address", default="127.0.0.1",
           group=_SERVER),
    Option("port", integer(0, 65535), "port to listen on", default=5000, group=_SERVER),
    Option("workers", integer(1), "worker processes", group=_SERVER, default_text="one per CPU core"),
    Option("threads", integer(1), "requests a worker runs at once; one waiting on a slow client "
           "lets another run meanwhile, in a thread of its own", default=8, group=_SERVER),
    Option("max-connections", integer(1), "open connections per worker, idle or not; at the cap, "
           "those that have not sent a complete request for the longest are closed to make room",
           default=1000, group=_SERVER),
    Option("header-timeout", number(above=0, unit="seconds"), "seconds a client has to send a "
           "whole request head, from connecting or from the first byte of a kept-alive "
           "connection's next request", default=20.0, group=_SERVER),
    Option("body-timeout", number(0, unit="seconds"), "seconds a request body may send nothing "
           "before the request fails, 0 for no limit; a slow but steady body is not cut",
           default=60.0, group=_SERVER),
    Option("delete", boolean(), "allow deleting manifests, tags and blobs; --no-delete answers 405 "
           "UNSUPPORTED", dest="delete_enabled", env="REGISTRY_DELETE_ENABLED", default=True,
           group=_SERVER),
    Option("read-only", boolean(), "refuse every push, upload and delete with 405 UNSUPPORTED "
           "(maintenance); pulls go on, whatever the auth scheme", default=False, group=_SERVER),
    TOUCH_INTERVAL,
)

TLS_OPTIONS = (
    Option("tls-cert", file(), "serve HTTPS with this PEM certificate (chain); docker refuses "
           "plain HTTP to a registry that is not on localhost", group=_TLS),
    Option("tls-key", file(), "the PEM private key of --tls-cert (if that file does not hold it)",
           group=_TLS),
)

#: The periodic collection in ``serve`` (the ``gc`` command has options of its own).
GC_OPTIONS = (
    Option("gc-interval", number(0, unit="hours"), "collect garbage every HOURS in one of the "
           "workers; 0: never (run gc from cron)", default=0.0, group=_GC),
    Option("gc-grace", number(0, unit="hours"), "the periodic collection's grace period",
           default=DEFAULT_GRACE / 3600, group=_GC),
    Option("gc-delete-untagged", boolean(), "the periodic collection also deletes untagged manifests",
           default=False, group=_GC),
    Option("gc-retention", file(_retention_rules), "retention rules for the periodic collection "
           "(docs/retention.rst)", group=_GC),
)

GUNICORN = Option("gunicorn", tables(_gunicorn_table, toml="table"), "further gunicorn settings, "
                  "by gunicorn's names (keepalive = 5, forwarded_allow_ips = \"10.0.0.1\"); "
                  "GUNICORN_CMD_ARGS overrides them", flag=False, env=False, default={},
                  group="configuration", default_text="none")

#: Everything ``serve`` reads: the configuration file's keys are these options' names.
SERVE_OPTIONS: tuple[Option, ...] = (
    CONFIG, *OPTIONS, *logs.OPTIONS, logs.ACCESS_LOG, *TLS_OPTIONS, *storage_config.OPTIONS,
    *auth_config.OPTIONS, *proxy_config.OPTIONS, *webhooks.OPTIONS, *health.OPTIONS, *metrics.OPTIONS,
    *GC_OPTIONS, GUNICORN,
)


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Paths beside ``/v2`` and the extra apps: the registry's own 404 error."""
    return error_reply(NotFound({"path": environ.get("PATH_INFO", "")[:200]}))(environ, start_response)


def gunicorn_settings(table: Mapping[str, Any], command_line: str) -> dict[str, Any]:
    """gunicorn settings from a ``[gunicorn]`` table, then from ``GUNICORN_CMD_ARGS`` text (which
    wins), each checked by gunicorn's own validator; ValueError, in one line, for a setting
    gunicorn does not know, one that serve's own options decide, or a bad value."""
    if not table and not command_line.strip():
        return {}
    require("gunicorn", "server", "gunicorn settings")
    from gunicorn.config import Config

    config = Config()
    settings: dict[str, Any] = {}
    for name, value in table.items():
        key, checked = _checked(config, name, value, f"gunicorn.{name}")
        settings[key] = checked
    if command_line.strip():
        for name, value in _command_line(config, command_line).items():
            key, checked = _checked(config, name, value, f"GUNICORN_CMD_ARGS {name}")
            settings[key] = checked
    return settings


def _checked(config: Any, name: str, value: Any, where: str) -> tuple[str, Any]:
    key = str(name).replace("-", "_").lower()
    if key not in config.settings:
        raise ValueError(f"{where}: not a gunicorn setting")
    if key in OWNED_SETTINGS:
        raise ValueError(f"{where}: set by serve; use {OWNED_SETTINGS[key]}")
    try:
        config.set(key, value)
    except Exception as exc:  # gunicorn's validators raise TypeError, ValueError and others
        raise ValueError(f"{where} = {value!r}: {exc}") from None
    return key, config.settings[key].get()


def _command_line(config: Any, text: str) -> dict[str, Any]:
    """The settings ``GUNICORN_CMD_ARGS`` sets, parsed by gunicorn's own parser."""
    parser = config.parser()

    def refuse(message: str) -> None:
        raise ValueError(f"GUNICORN_CMD_ARGS: {message}")

    parser.error = refuse
    try:
        args = parser.parse_args(shlex.split(text))
    except ValueError:
        raise
    except SystemExit:  # --help or --version
        raise ValueError("GUNICORN_CMD_ARGS: takes settings only") from None
    if args.args:
        raise ValueError(f"GUNICORN_CMD_ARGS: takes settings only, not {' '.join(args.args)!r}")
    return {name: value for name, value in vars(args).items() if value is not None and name != "args"}


def check(namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> list[str]:
    """What would stop ``serve`` from starting with these settings, one line each (empty: none).

    Each value was checked by the reader already; this checks them together, opening no storage
    and binding nothing: storage settings and the root folder, auth (its files loaded), mirrors,
    webhooks, metrics, TLS (certificate and key loaded), periodic collection, gunicorn settings.
    """
    env = os.environ if environ is None else environ
    problems: list[str] = []

    def attempt(step: Callable[[], object]) -> None:
        try:
            step()
        except (ValueError, MissingExtra) as exc:
            problems.append(str(exc))

    attempt(lambda: storage_config.check(namespace))
    attempt(lambda: auth_config.build(namespace))
    attempt(lambda: proxy_config.mirrors_from(namespace))
    attempt(lambda: webhooks.build(namespace))
    attempt(lambda: metrics.ServerMetrics.from_namespace(namespace))
    attempt(lambda: _tls(namespace))
    attempt(lambda: _usage_collector(namespace))
    attempt(lambda: gunicorn_settings(namespace.gunicorn, env.get("GUNICORN_CMD_ARGS", "")))
    return problems


def _tls(namespace: argparse.Namespace) -> tuple[str, str | None] | None:
    """``(certificate, key)`` files, loaded once to prove they make a server context; None: no TLS."""
    cert, key = namespace.tls_cert, namespace.tls_key
    if cert is None and key is None:
        return None
    if cert is None:
        raise ValueError("--tls-key needs --tls-cert")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        files = f"--tls-cert {cert}" + (f" and --tls-key {key}" if key else "")
        reason = getattr(exc, "reason", None) or exc.strerror or str(exc)
        raise ValueError(f"{files}: not a certificate and its private key ({reason})") from None
    return cert, key


def _usage_collector(namespace: argparse.Namespace) -> None:
    """A grace period too short for the touch interval fails now, not in a worker."""
    if namespace.gc_interval > 0:
        from .storage.memory import MemoryStorage

        _periodic_collector(namespace, MemoryStorage())


def _read_only(namespace: argparse.Namespace) -> bool:
    return bool(namespace.read_only) or namespace.auth == "read-only"


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
    server_metrics = metrics.ServerMetrics.from_namespace(namespace)  # None with --no-metrics
    storage = storage_config.build(namespace)
    if server_metrics is not None:
        storage = server_metrics.instrument_storage(storage, namespace.storage)
    auth, extra = auth_config.build(namespace)
    registry = Registry(storage=storage, auth=auth, delete_enabled=namespace.delete_enabled,
                        read_only=_read_only(namespace), touch_interval=namespace.touch_interval,
                        metrics=server_metrics.registry_metrics if server_metrics else None,
                        mirrors=proxy_config.build(namespace))
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
    if server_metrics is not None:
        app = server_metrics.wrap(app)
    return logs.RequestIdMiddleware(app)


def _periodic_collector(namespace: argparse.Namespace, storage: Storage) -> PeriodicCollector:
    retention = RetentionPolicy.from_file(namespace.gc_retention) if namespace.gc_retention else None
    usage = UsageRecords(storage, touch_interval=namespace.touch_interval)
    prune = pruning(storage, proxy_config.mirrors_from(namespace))  # mirrors with a budget

    def make() -> Collector:
        return Collector(storage, grace=namespace.gc_grace * 3600, usage=usage,
                         delete_untagged=namespace.gc_delete_untagged, retention=retention,
                         after=[prune] if prune else [])

    make()  # a grace period too short for the touch interval fails now, not in a worker
    return PeriodicCollector(storage, namespace.gc_interval * 3600, make)


def bind_address(host_: str, port: int) -> str:
    """gunicorn's ``bind`` for a host and port: an IPv6 address in brackets (``[::]:5000``)."""
    return f"[{host_}]:{port}" if ":" in host_ else f"{host_}:{port}"


def describe(namespace: argparse.Namespace, hooks: webhooks.WebhookConfig | None = None) -> list[str]:
    """What ``serve`` runs, in lines for its start: storage, auth, mode, mirrors, health and
    metrics, webhooks, garbage collection (the addresses come from the sockets once bound)."""
    auth = namespace.auth if namespace.auth != "read-only" else "none"
    if auth == "htpasswd":
        auth += f" (users in {namespace.htpasswd})"
    elif auth == "token":
        auth += (f" (built-in issuer at {namespace.token_path}, users in {namespace.htpasswd})"
                 if namespace.token_signing_key else f" (tokens from {namespace.token_realm})")
    if namespace.access_rules:
        auth += f", access rules in {namespace.access_rules}"
    mode = ("read-only: pushes and deletes refused" if _read_only(namespace)
            else "read-write" + ("" if namespace.delete_enabled else ", deletes refused"))
    if not namespace.metrics:
        scrape = "off"
    else:
        where = f"only on {namespace.metrics_bind}" if namespace.metrics_bind else "on every address"
        guarded = ", token required" if (namespace.metrics_token or namespace.metrics_token_file) else ""
        scrape = f"/metrics {where}{guarded}"
    endpoints = hooks.endpoints if hooks is not None else ()
    mirrors = proxy_config.mirrors_from(namespace)
    if namespace.gc_interval > 0:
        collect = f"every {namespace.gc_interval:g} h, grace {namespace.gc_grace:g} h"
        if namespace.gc_delete_untagged:
            collect += ", untagged manifests too"
        if namespace.gc_retention:
            collect += f", retention rules in {namespace.gc_retention}"
        if any(mirror.budget is not None for mirror in mirrors):
            collect += ", mirrors pruned to their budgets"
    else:
        collect = "off (run docker-registry-wsgi gc from cron)"
    return [
        f"storage: {storage_config.describe(namespace)}",
        f"auth: {auth}",
        f"mode: {mode}",
        f"mirrors: {proxy_config.describe(mirrors)}",
        f"health: /livez, /readyz; metrics: {scrape}",
        f"webhooks: {len(endpoints)} endpoint(s)" + (
            f" ({', '.join(e.url for e in endpoints)})" if endpoints else ""),
        f"garbage collection: {collect}",
    ]


def serve(namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> None:
    """Run gunicorn (this package's gthread worker) in this process until it is stopped.

    ``environ`` (default ``os.environ``) supplies ``GUNICORN_CMD_ARGS``.
    """
    require("gunicorn", "server", "the standalone server")
    from gunicorn.app.base import BaseApplication

    from .gunicorn_logging import GunicornLogger
    from .worker import ThreadWorker

    env = os.environ if environ is None else environ
    log = logging.getLogger("docker_registry_wsgi.server")
    if namespace.auth == "read-only":
        log.warning("--auth read-only is deprecated: it means --auth none --read-only, which say so")
    workers = namespace.workers or os.cpu_count() or 1
    if namespace.storage == "memory" and workers != 1:
        log.warning("memory storage is per process: running one worker instead of %d", workers)
        workers = 1
    tls = _tls(namespace)
    options: dict[str, Any] = {
        "bind": [bind_address(namespace.host, namespace.port)],
        "workers": workers,
        "threads": namespace.threads,
        "worker_connections": namespace.max_connections,
        "worker_class": ThreadWorker.configured(header_timeout=namespace.header_timeout,
                                                body_timeout=namespace.body_timeout),
        "keepalive": 75,
        "timeout": 120,
        "accesslog": "-" if namespace.access_log else None,
        "errorlog": "-",
        "loglevel": namespace.log_level,
        "logger_class": GunicornLogger.configured(namespace.log_format),
        # gunicorn 27's control socket is one path per user: servers would share it.
        "control_socket_disable": True,
    }
    if tls is not None:
        options["certfile"], options["keyfile"] = tls
    options.update(gunicorn_settings(namespace.gunicorn, env.get("GUNICORN_CMD_ARGS", "")))
    server_metrics = metrics.ServerMetrics.from_namespace(namespace)
    if server_metrics is not None:
        server_metrics.configure_gunicorn(options)  # before anything imports prometheus_client
    failure = health.startup_failure(namespace, lambda: storage_config.build(namespace))
    if failure is not None:
        raise StartupFailure(failure)
    # Fail on a bad configuration now, in the master, not in every worker.
    build_app(namespace)
    summary = describe(namespace, webhooks.build(namespace))
    options["when_ready"] = _announce(options.get("when_ready"), summary, workers, namespace.threads)

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


def _announce(previous: Callable[[Any], None] | None, summary: list[str], workers: int,
              threads: int) -> Callable[[Any], None]:
    """gunicorn's ``when_ready`` hook: once the sockets are bound, say where and what is served."""
    def when_ready(arbiter: Any) -> None:
        log = logging.getLogger("docker_registry_wsgi.server")
        scheme = "https" if arbiter.cfg.is_ssl else "http"
        addresses = ", ".join(_url(scheme, listener) for listener in arbiter.LISTENERS)
        log.info("docker-registry-wsgi %s listening on %s (%d worker(s), %d threads each)",
                 __version__, addresses, workers, threads)
        for line in summary:
            log.info("%s", line)
        if previous is not None:
            previous(arbiter)
    return when_ready


def _url(scheme: str, listener: Any) -> str:
    """``https://[::]:5000`` for a bound TCP socket (gunicorn's own text says http for IPv6)."""
    address = listener.sock.getsockname()
    if not isinstance(address, tuple):
        return str(listener)
    host_, port = address[0], address[1]
    return f"{scheme}://{bind_address(host_, port)}"
