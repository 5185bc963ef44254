"""``docker-registry-wsgi``: the command line (``serve`` runs the standalone registry)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

from . import __version__, scrub
from .auth.config import ConfigError
from .content import RegistryContent
from .extras import MissingExtra
from .server import StartupFailure
from .gc import DEFAULT_GRACE
from .storage import config as storage_config
from .usage import DEFAULT_TOUCH_INTERVAL, UsageRecords

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
    collect = commands.add_parser(
        "gc", help="delete what no manifest needs (safe while the registry serves)",
        description="Garbage collection: delete blobs and repository links no manifest refers "
                    "to, untagged manifests when asked, and repositories left empty; anything "
                    "touched (uploaded, linked, mounted, confirmed by HEAD) within the grace "
                    "period stays. Safe while any number of registry processes serve the same "
                    "storage. Uses the same storage options as serve.",
    )
    collect.add_argument("--dry-run", action="store_true",
                         help="list what would go and how many bytes; change nothing")
    collect.add_argument("--delete-untagged", action="store_true",
                         help="also delete manifests no tag reaches (through indexes and referrers)")
    collect.add_argument("--grace", type=float, default=DEFAULT_GRACE / 3600, metavar="HOURS",
                         help=f"spare what was used this recently (default {DEFAULT_GRACE / 3600:g})")
    collect.add_argument("--retention", metavar="FILE",
                         help="retention rules (JSON or TOML): which tags to keep per repository")
    collect.add_argument("--touch-interval", type=float, default=DEFAULT_TOUCH_INTERVAL,
                         metavar="SECONDS",
                         help="the registry's --touch-interval (default %(default)g); the grace "
                              "period must be longer")
    collect.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    storage_config.add_arguments(collect)
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


class _Progress:
    """Progress lines on stderr, at most one a second (and the last of each phase)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.last = quiet, 0.0

    def __call__(self, phase: str, done: int, total: int, detail: str) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < 1.0 and done != total):
            return
        self.last = now
        print(f"gc: {phase} {done}/{total} {detail}", file=sys.stderr, flush=True)


def _collect(args: argparse.Namespace) -> int:
    from .gc import Collector

    retention = None
    if args.retention:
        from .retention import RetentionPolicy

        retention = RetentionPolicy.from_file(args.retention)
    storage = storage_config.build_existing(args)
    collector = Collector(storage, grace=args.grace * 3600, dry_run=args.dry_run,
                          delete_untagged=args.delete_untagged, retention=retention,
                          usage=UsageRecords(storage, touch_interval=args.touch_interval),
                          progress=_Progress(args.quiet))
    report = collector.run()
    if args.dry_run:
        from .retention import render_plan, render_summary

        for plan in report.plans:
            for line in render_plan(plan):
                print(line)
        if report.plans:
            for line in render_summary(report.plans):
                print(line)
        for removal in report.removals:
            print(f"would remove {removal}")
    for error in report.errors:
        print(f"gc: error: {error}", file=sys.stderr)
    print(("dry run: " if args.dry_run else "gc: ") + report.summary())
    return 1 if report.errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            from .server import serve

            serve(args)
        elif args.command == "gc":
            return _collect(args)
        elif args.command == "purge-uploads":
            content = RegistryContent(storage_config.build_existing(args))
            purged = content.purge_uploads(args.older_than * 3600)
            print(f"cancelled {len(purged)} upload session(s) idle for {args.older_than:g} h")
        elif args.command == "scrub":
            return scrub.run_command(args)
    except (ConfigError, ValueError, MissingExtra) as exc:
        print(f"docker-registry-wsgi: {exc}", file=sys.stderr)
        return 2
    except StartupFailure as exc:
        print(f"docker-registry-wsgi: {exc}", file=sys.stderr)
        return 1
    return 0
