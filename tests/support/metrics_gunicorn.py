"""gunicorn settings for the metrics tests: what ``serve`` sets, with the metrics hooks applied.

Loaded in gunicorn's master (``-c python:tests.support.metrics_gunicorn``) before any worker
builds the app, as ``serve`` must: :meth:`ServerMetrics.configure_gunicorn` turns on multiprocess
mode, adds ``REGISTRY_METRICS_BIND`` to the bind list and sets the ``child_exit`` hook. The
registry's own address is ``REGISTRY_TEST_BIND``; ``REGISTRY_TEST_MAX_REQUESTS`` recycles
workers after that many requests (so that several worker processes serve one test).
"""

from __future__ import annotations

import os
from typing import Any

from docker_registry_wsgi.metrics import ServerMetrics
from tests.support.metrics_app import options as _options

_settings: dict[str, Any] = {
    "bind": [os.environ["REGISTRY_TEST_BIND"]],
    "workers": 2,
    "threads": 2,
    "worker_class": "docker_registry_wsgi.worker.ThreadWorker",  # serve's worker
    "max_requests": int(os.environ.get("REGISTRY_TEST_MAX_REQUESTS", "0")),
    "errorlog": "-",
    "loglevel": "info",
}
_server_metrics = ServerMetrics.from_namespace(_options())
assert _server_metrics is not None, "these tests run with metrics on"
_server_metrics.configure_gunicorn(_settings)
globals().update(_settings)
