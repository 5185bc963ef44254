"""The registry with mirrors as gunicorn serves it, for the end-to-end tests.

``gunicorn 'tests.proxy.cache_site:build()'`` with ``PROXY_SITE_ARGS`` holding ``serve``-style options
(storage, auth and the pull-through cache's ``--proxy`` options) builds the app exactly as
``serve`` does once it takes the proxy options (docs/mirroring.rst gives the wiring):
``Registry(storage, auth=..., mirrors=proxy_config.build(options))``.
"""

from __future__ import annotations

import argparse
import os
import shlex

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth import config as auth_config
from docker_registry_wsgi.middleware import WSGIApp
from docker_registry_wsgi.proxy import config as proxy_config
from docker_registry_wsgi.storage import config as storage_config


def build() -> WSGIApp:
    """The WSGI app of the options in ``PROXY_SITE_ARGS``."""
    parser = argparse.ArgumentParser()
    storage_config.add_arguments(parser, {})
    auth_config.add_arguments(parser, {})
    proxy_config.add_arguments(parser, {})
    options = parser.parse_args(shlex.split(os.environ.get("PROXY_SITE_ARGS", "")))
    auth, _ = auth_config.build(options)
    return Registry(storage_config.build(options), auth=auth, mirrors=proxy_config.build(options))
