"""``docker-registry-wsgi``: the command line (``serve`` runs the standalone registry)."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import __version__, scrub
from .auth.config import ConfigError
from .content import RegistryContent
from .storage import config as storage_config

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
    purge = commands.add_parser(
        "purge-uploads", help="cancel upload sessions idle for a given time, reclaim leftovers",
        description="Cancel unfinished upload sessions (and drop their bytes) with no activity "
                    "for --older-than hours, and reclaim what crashed writes left behind. Safe "
                    "while the registry serves. Uses the same storage options as serve.",
    )
    purge.add_argument("--older-than", type=float, default=24.0, metavar="HOURS",
                       help="hours without activity (default 24)")
    storage_config.add_arguments(purge)
    scrub_command = commands.add_parser(
        "scrub", help="re-hash stored blobs and manifests, report any that do not match",
        description="Re-hash the stored blobs and manifests (all, one repository's, or a sample) "
                    "and report those whose bytes do not match their digest, blobs that are "
                    "needed but gone, and manifests that do not parse, with the repositories and "
                    "tags that refer to them. Exit status 1 when anything is found. Read-only: "
                    "safe while the registry serves. Uses the same storage options as serve.",
    )
    scrub.add_arguments(scrub_command)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            from .server import serve

            serve(args)
        elif args.command == "purge-uploads":
            content = RegistryContent(storage_config.build(args))
            purged = content.purge_uploads(args.older_than * 3600)
            print(f"cancelled {len(purged)} upload session(s) idle for {args.older_than:g} h")
        elif args.command == "scrub":
            return scrub.run_command(args)
    except (ConfigError, ValueError) as exc:
        print(f"docker-registry-wsgi: {exc}", file=sys.stderr)
        return 2
    return 0
