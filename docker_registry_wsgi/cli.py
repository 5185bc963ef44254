"""``docker-registry-wsgi``: the command line (``serve`` runs the standalone registry)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import __version__
from .auth.config import ConfigError

__all__ = ["main"]


def parser() -> argparse.ArgumentParser:
    from .server import add_arguments

    top = argparse.ArgumentParser(
        prog="docker-registry-wsgi",
        description="A container registry (OCI Distribution Spec v1.1) as a WSGI application.",
    )
    top.add_argument("--version", action="version", version=__version__)
    commands = top.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the standalone registry (gunicorn, gthread workers)",
        description="Run the standalone registry. Every option also reads a REGISTRY_* "
                    "environment variable; defaults: 127.0.0.1:5000, filesystem storage in "
                    "./registry-data, no authentication.",
    )
    add_arguments(serve)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        from .server import serve

        try:
            serve(args)
        except (ConfigError, ValueError) as exc:
            print(f"docker-registry-wsgi: {exc}", file=sys.stderr)
            return 2
    return 0
