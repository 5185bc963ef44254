"""``docker-registry-wsgi``: the command line (``serve`` runs the standalone registry).

Each command is the options it takes (:mod:`.options`): flags, ``REGISTRY_*`` variables and the
keys of a ``--config`` file, read by one reader before the command starts. A bad value is one
line naming the setting and exit status 2; a storage that cannot be reached at start, exit 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import logs, scrub, server
from .auth.config import ConfigError
from .content import RegistryContent
from .extras import MissingExtra
from .gc import DEFAULT_GRACE
from .metrics import textfile_option
from .options import (
    CONFIG,
    ConfigFile,
    Option,
    OptionErrors,
    add_to_parser,
    boolean,
    file,
    load_file,
    number,
    resolve,
)
from .proxy import config as proxy_config
from .retention import RetentionPolicy
from .server import StartupFailure
from .storage import config as storage_config
from .usage import UsageRecords
from .version import __version__

__all__ = ["main", "parser", "parse", "read", "COMMANDS"]

PROG = "docker-registry-wsgi"


def _retention_rules(path: str) -> None:
    RetentionPolicy.from_file(path)


def _only_here(name: str, kind: Any, help: str, default: Any = None, **more: Any) -> Option:
    """An option of one command, on its command line only (no variable, not in the file)."""
    return Option(name, kind, help, default, env=False, file=False, **more)


GC_OPTIONS = (
    _only_here("dry-run", boolean(), "list what would go and how many bytes; change nothing", False,
               group="gc"),
    _only_here("delete-untagged", boolean(), "also delete manifests no tag reaches (through indexes "
               "and referrers)", False, group="gc"),
    _only_here("grace", number(0, unit="hours"), "spare what was used this recently",
               DEFAULT_GRACE / 3600, group="gc"),
    _only_here("retention", file(_retention_rules), "retention rules (JSON or TOML): which tags to "
               "keep per repository", group="gc"),
    _only_here("quiet", boolean(), "no progress lines on stderr", False, group="gc"),
    textfile_option("REGISTRY_GC_METRICS_TEXTFILE"),
)
PURGE_OPTIONS = (
    _only_here("older-than", number(0, unit="hours"), "hours without activity", 24.0,
               group="purge-uploads"),
    textfile_option("REGISTRY_PURGE_METRICS_TEXTFILE"),
)
#: What every command takes besides its own: the configuration file and the logs' form.
COMMON = (CONFIG, *logs.OPTIONS)


@dataclass(frozen=True)
class Command:
    """A subcommand: its help line, its description and every option it reads."""

    help: str
    description: str
    options: tuple[Option, ...]


_SAME_STORAGE = "Uses the same storage options (and --config file) as serve."

COMMANDS: dict[str, Command] = {
    "serve": Command(
        "run the standalone registry (gunicorn, gthread workers)",
        "Run the standalone registry. Each option is also a REGISTRY_* environment variable and a "
        "key of the --config file (TOML); the command line wins over the environment, which wins "
        "over the file. Defaults: 127.0.0.1:5000, filesystem storage in ./registry-data, no "
        "authentication.",
        server.SERVE_OPTIONS),
    "purge-uploads": Command(
        "cancel upload sessions idle for a given time, reclaim leftovers",
        "Cancel unfinished upload sessions (and drop their bytes) with no activity for "
        "--older-than hours, and reclaim what crashed writes left behind. Safe while the registry "
        "serves. " + _SAME_STORAGE,
        (*PURGE_OPTIONS, *COMMON, *storage_config.OPTIONS)),
    "gc": Command(
        "delete what no manifest needs (safe while the registry serves)",
        "Garbage collection: delete blobs and repository links no manifest refers to, untagged "
        "manifests when asked, and repositories left empty; anything touched (uploaded, linked, "
        "mounted, confirmed by HEAD) within the grace period stays. Mirrors with a budget are then "
        "pruned to it, least recently pulled first. Safe while any number of registry processes "
        "serve the same storage. Uses the same storage and mirror options (and --config file) as "
        "serve.",
        (*GC_OPTIONS, server.TOUCH_INTERVAL, *COMMON, *storage_config.OPTIONS, *proxy_config.OPTIONS)),
    "scrub": Command(
        "re-hash stored blobs and manifests, report any that do not match",
        "Re-hash the stored blobs and manifests (all, one repository's, or a sample) and report "
        "those whose bytes do not match their digest, blobs that are needed but gone, and "
        "manifests that do not parse, with the repositories and tags that refer to them. Exit "
        "status 1 when anything is found. Read-only: safe while the registry serves. "
        + _SAME_STORAGE,
        (*scrub.OPTIONS, *COMMON, *storage_config.OPTIONS)),
}


def known_options() -> list[Option]:
    """Every option of every command: a configuration file may hold any of their keys."""
    return [option for command in COMMANDS.values() for option in command.options]


def parser() -> argparse.ArgumentParser:
    """The argument parser: flags only, no defaults read (``--help`` needs nothing else)."""
    top = argparse.ArgumentParser(
        prog=PROG,
        description="A container registry (OCI Distribution Spec v1.1) as a WSGI application.",
    )
    top.add_argument("--version", action="version", version=__version__)
    commands = top.add_subparsers(dest="command", required=True)
    for name, command in COMMANDS.items():
        sub = commands.add_parser(name, help=command.help, description=command.description)
        add_to_parser(sub, command.options)
    config = commands.add_parser(
        "config", help="check a configuration file",
        description="Commands about the configuration file (TOML; its keys are serve's options).")
    actions = config.add_subparsers(dest="action", required=True)
    check = actions.add_parser(
        "check", help="validate a configuration file as serve would read it",
        description="Read FILE as serve --config FILE would, with this environment's REGISTRY_* "
                    "variables over it, and check every setting and the files it names, without "
                    "opening the storage. One line per problem and exit status 2; 'ok' and 0.")
    check.add_argument("file", metavar="FILE", help="the TOML file")
    check.add_argument("--ignore-env", action="store_true",
                       help="check the file alone, without the REGISTRY_* variables")
    return top


def read(command: str, given: Mapping[str, Any], environ: Mapping[str, str]) -> argparse.Namespace:
    """The settings of ``command``: flags ``given`` (by dest), over ``environ``'s variables, over
    the ``--config`` file's keys, over the defaults. :class:`OptionErrors` for bad values."""
    options = COMMANDS[command].options
    where = resolve([CONFIG], given, environ)
    config: ConfigFile | None = None
    if where.config is not None:
        config = load_file(where.config, known_options())
    namespace = resolve(options, given, environ, config)
    namespace.command = command
    return namespace


def parse(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> argparse.Namespace:
    """A command line's settings as its command reads them (``environ``: none if not given).

    argparse's usage errors exit (status 2); :class:`OptionErrors` for bad values.
    """
    args = parser().parse_args(list(argv))
    return read(args.command, vars(args), {} if environ is None else environ)


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
    from .proxy.prune import PruneReport, pruning

    retention = RetentionPolicy.from_file(args.retention) if args.retention else None
    mirrors = proxy_config.mirrors_from(args)
    storage = storage_config.build_existing(args)
    prune = pruning(storage, mirrors)
    collector = Collector(storage, grace=args.grace * 3600, dry_run=args.dry_run,
                          delete_untagged=args.delete_untagged, retention=retention,
                          after=[prune] if prune else [],
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
        for pruned in report.prunes:
            if isinstance(pruned, PruneReport):
                for digest, size in pruned.evicted:
                    print(f"would evict blob {digest} ({size} bytes) from {pruned.mirror.label}: "
                          "least recently pulled, over its budget")
    for error in report.errors:
        print(f"gc: error: {error}", file=sys.stderr)
    print(("dry run: " if args.dry_run else "gc: ") + report.summary())
    if args.metrics_textfile and not args.dry_run:
        from .metrics import write_gc_textfile

        write_gc_textfile(args.metrics_textfile, report)
    return 1 if report.errors else 0


def _purge(args: argparse.Namespace) -> int:
    content = RegistryContent(storage_config.build_existing(args))
    purged = content.purge_uploads(args.older_than * 3600)
    print(f"cancelled {len(purged)} upload session(s) idle for {args.older_than:g} h")
    if args.metrics_textfile:
        from .metrics import write_purge_textfile

        write_purge_textfile(args.metrics_textfile, purged)
    return 0


def _problems(lines: Sequence[str]) -> int:
    for line in lines:
        print(f"{PROG}: {line}", file=sys.stderr)
    return 2


def _check_config(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """``config check FILE``: every problem serve would find at start (storage not opened)."""
    env: Mapping[str, str] = {} if args.ignore_env else environ
    try:
        namespace = read("serve", {"config": args.file}, env)
    except OptionErrors as exc:
        return _problems([str(error) for error in exc.errors])
    problems = server.check(namespace, env)
    if problems:
        return _problems(problems)
    print("ok")
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run a command; its exit status (0 done, 1 failed or found problems, 2 bad settings)."""
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    if args.command == "config":
        logs.configure()
        return _check_config(args, environ)
    try:
        namespace = read(args.command, vars(args), environ)
    except OptionErrors as exc:
        return _problems([str(error) for error in exc.errors])
    logs.configure(namespace.log_level, namespace.log_format)
    try:
        if args.command == "serve":
            problems = server.check(namespace, environ)
            if problems:
                return _problems(problems)
            server.serve(namespace, environ)
        elif args.command == "gc":
            return _collect(namespace)
        elif args.command == "purge-uploads":
            return _purge(namespace)
        elif args.command == "scrub":
            return scrub.run_command(namespace)
    except (ConfigError, ValueError, MissingExtra) as exc:
        return _problems([str(exc)])
    except StartupFailure as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    return 0
