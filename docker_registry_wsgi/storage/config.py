"""The storage settings of the command line (``serve``, ``gc``, ``purge-uploads``, ``scrub``).

:data:`OPTIONS` declares them (flags, ``REGISTRY_*`` variables and configuration file keys, read
by :mod:`docker_registry_wsgi.options`); :func:`build` makes the backend they describe,
:func:`build_existing` the same for a command that works on an existing registry, and
:func:`check` says, before anything starts, why a server could not use them.
"""

from __future__ import annotations

import argparse
import errno
import os

from ..options import Option, boolean, choice, integer, path, source, text, url
from .base import Storage

__all__ = ["OPTIONS", "build", "build_existing", "check", "check_root", "describe", "BACKENDS"]

#: The names accepted by ``--storage``.
BACKENDS = ("filesystem", "memory", "s3")
_MIB = 1 << 20

OPTIONS = (
    Option("storage", choice(*BACKENDS), "storage backend", default="filesystem", group="storage"),
    Option("root", path("a folder", "FOLDER"), "folder of the filesystem backend",
           default="./registry-data", group="storage"),
    Option("s3-bucket", text(metavar="BUCKET"), "S3 bucket; required with --storage s3", group="storage"),
    Option("s3-prefix", text(metavar="PREFIX"), "key prefix inside the bucket", default="", group="storage",
           default_text="none"),
    Option("s3-endpoint-url", url(), "S3 endpoint for non-AWS stores, e.g. http://127.0.0.1:8333",
           group="storage", default_text="AWS"),
    Option("s3-region", text(metavar="REGION"), "S3 region", group="storage",
           default_text="boto3's configuration"),
    Option("s3-access-key", text(metavar="KEY"), "access key id", group="storage",
           default_text="boto3's credential chain"),
    Option("s3-secret-key", text(metavar="KEY"), "secret access key", group="storage", secret=True),
    Option("s3-redirect", boolean(), "answer blob GETs with a 307 to a presigned URL", default=False,
           group="storage"),
    Option("s3-part-size", integer(5 * _MIB, unit="bytes"), "multipart part size in bytes",
           group="storage", default_text="8 MiB (8388608)"),
    Option("s3-read-part-size", integer(_MIB, unit="bytes"), "blobs larger than this are pulled in "
           "ranged GETs of this many bytes", group="storage", default_text="8 MiB (8388608)"),
    Option("s3-read-concurrency", integer(1), "ranged GETs at once per blob pulled (1: one GET of "
           "the whole blob); a reader holds at most this many ranges in memory", group="storage",
           default_text="4"),
)


def check(namespace: argparse.Namespace, *, writable_root: bool = True) -> None:
    """ValueError, naming the settings, for storage settings that cannot work together, and for
    a filesystem root this user cannot create or write (unless ``writable_root`` is false)."""
    if namespace.storage == "s3":
        if not namespace.s3_bucket:
            raise ValueError("--storage s3 needs --s3-bucket (or REGISTRY_S3_BUCKET, or s3-bucket "
                             "in the configuration file)")
        if bool(namespace.s3_access_key) != bool(namespace.s3_secret_key):
            raise ValueError("--s3-access-key and --s3-secret-key go together")
    if namespace.storage == "filesystem" and writable_root:
        reason = check_root(namespace.root)
        if reason is not None:
            raise ValueError(f"{source(namespace, 'root', namespace.root)}: {reason}")


def check_root(root: str) -> str | None:
    """Why this user cannot keep a registry in the folder ``root``, or ``None`` if it can.

    A folder that does not exist yet must be creatable. A file system mounted read-only is not
    a setting's fault but the storage's state (a disk the kernel remounted after errors): the
    start check reports it, and ``--start-degraded`` may start anyway.
    """
    folder = os.path.abspath(root)
    existing = folder
    while not os.path.exists(existing):
        parent = os.path.dirname(existing)
        if parent == existing:
            break
        existing = parent
    if not os.path.isdir(existing):
        if existing == folder:
            return "not a folder"
        return f"cannot create it: {existing} is not a folder"
    if os.access(existing, os.W_OK | os.X_OK) or _read_only_mount(existing):
        return None
    if existing == folder:
        return f"not writable by this user (uid {os.geteuid()})"
    return f"cannot create it: {existing} is not writable by this user (uid {os.geteuid()})"


def _read_only_mount(folder: str) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError as exc:
        return exc.errno == errno.EROFS


def build(namespace: argparse.Namespace) -> Storage:
    """Create the storage backend the parsed options describe."""
    check(namespace, writable_root=False)
    kind = namespace.storage
    if kind == "memory":
        from .memory import MemoryStorage

        return MemoryStorage()
    if kind == "filesystem":
        from .filesystem import FilesystemStorage

        return FilesystemStorage(namespace.root)
    if kind == "s3":
        from .s3 import DEFAULT_PART_SIZE, DEFAULT_READ_CONCURRENCY, DEFAULT_READ_PART_SIZE, S3Storage

        return S3Storage(
            namespace.s3_bucket,
            prefix=namespace.s3_prefix or "",
            endpoint_url=namespace.s3_endpoint_url,
            region=namespace.s3_region,
            access_key=namespace.s3_access_key,
            secret_key=namespace.s3_secret_key,
            redirect=namespace.s3_redirect,
            part_size=namespace.s3_part_size or DEFAULT_PART_SIZE,
            read_part_size=namespace.s3_read_part_size or DEFAULT_READ_PART_SIZE,
            read_concurrency=namespace.s3_read_concurrency or DEFAULT_READ_CONCURRENCY,
        )
    raise ValueError(f"unknown storage backend: {kind!r}")


def describe(namespace: argparse.Namespace) -> str:
    """The storage in one line, for the server's start: backend and where."""
    if namespace.storage == "filesystem":
        return f"filesystem {os.path.abspath(namespace.root)}"
    if namespace.storage == "s3":
        prefix = f"/{namespace.s3_prefix.strip('/')}" if namespace.s3_prefix else ""
        endpoint = f" at {namespace.s3_endpoint_url}" if namespace.s3_endpoint_url else ""
        return f"s3 bucket {namespace.s3_bucket}{prefix}{endpoint}"
    return "memory (per process, lost at exit)"


#: What a filesystem root that holds a registry has in it (``~uploads``: created on first use).
_REGISTRY_FOLDERS = ("blobs", "repositories", "~uploads")


def build_existing(namespace: argparse.Namespace) -> Storage:
    """The storage the options name, for a command that works on an existing registry.

    A mistyped ``--root`` or ``--s3-prefix`` must not quietly become a new, empty registry to
    collect, purge or scrub: :class:`ValueError` (naming the option) when it holds none.
    """
    if namespace.storage == "memory":
        raise ValueError("memory storage starts empty in every process: there is nothing to work on")
    if namespace.storage == "filesystem":
        root = os.path.abspath(namespace.root)
        setting = source(namespace, "root", root)
        if not os.path.isdir(root):  # checked first: the backend would create the folder
            raise ValueError(f"{setting}: no such folder")
        if not any(os.path.isdir(os.path.join(root, top)) for top in _REGISTRY_FOLDERS):
            raise ValueError(f"{setting}: holds no registry (no blobs/ or repositories/ in it)")
    storage = build(namespace)
    if namespace.storage != "filesystem" and not _holds_registry(storage):
        storage.close()
        raise ValueError("the storage holds no registry (no blobs/ or repositories/ keys): "
                         "check --s3-bucket and --s3-prefix")
    return storage


def _holds_registry(storage: Storage) -> bool:
    return any(True for _ in storage.list("blobs/")) or any(True for _ in storage.list("repositories/"))
