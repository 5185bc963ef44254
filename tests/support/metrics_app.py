"""The standalone server's app with health and metrics, as ``serve`` composes it, for gunicorn.

``gunicorn -c python:tests.support.metrics_gunicorn 'tests.support.metrics_app:build()'`` serves
``Registry(FilesystemStorage($REGISTRY_ROOT))`` with :class:`~docker_registry_wsgi.health.HealthApp`
and the metrics that ``REGISTRY_METRICS_*`` ask for, the way the server's ``build_app`` is to wire
them (docs/operations.rst). Options come from the environment only, through the real
``add_arguments`` of :mod:`docker_registry_wsgi.metrics` and :mod:`docker_registry_wsgi.health`.
"""

from __future__ import annotations

import argparse
import os

from docker_registry_wsgi import Registry, health, metrics
from docker_registry_wsgi.middleware import WSGIApp
from docker_registry_wsgi.storage import FilesystemStorage

__all__ = ["options", "build"]


def options() -> argparse.Namespace:
    """The health and metrics options, from ``REGISTRY_*`` variables (no command line)."""
    parser = argparse.ArgumentParser()
    health.add_arguments(parser, os.environ)
    metrics.add_arguments(parser, os.environ)
    return parser.parse_args([])


def build() -> WSGIApp:
    """The app of one worker: metered storage and registry, health in front, /metrics in front of all."""
    namespace = options()
    server_metrics = metrics.ServerMetrics.from_namespace(namespace)
    assert server_metrics is not None, "these tests run with metrics on"
    storage = server_metrics.instrument_storage(FilesystemStorage(os.environ["REGISTRY_ROOT"]), "filesystem")
    registry = Registry(storage, metrics=server_metrics.registry_metrics)
    app = health.HealthApp(storage, timeout=namespace.readiness_timeout, fallback=registry)
    return server_metrics.wrap(app)
