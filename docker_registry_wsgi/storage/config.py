"""Command-line glue for choosing and configuring a storage backend.

The standalone server calls :func:`add_arguments` on its parser and :func:`build` on the parsed
namespace. Every option has a ``REGISTRY_*`` environment variable as its default, so a fleet of
hosts can share one configuration through their environment.
"""

from __future__ import annotations

import argparse
import os
from typing import Mapping

from .base import Storage

__all__ = ["add_arguments", "build", "build_existing", "BACKENDS"]

#: The names accepted by ``--storage``.
BACKENDS = ("filesystem", "memory", "s3")

_TRUE = frozenset({"1", "true", "yes", "on"})


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in _TRUE


def add_arguments(
    parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None
) -> None:
    """Add the storage options to ``parser``; defaults come from ``env`` (``os.environ``)."""
    env = os.environ if env is None else env
    group = parser.add_argument_group("storage")
    group.add_argument(
        "--storage",
        choices=BACKENDS,
        default=env.get("REGISTRY_STORAGE", "filesystem"),
        help="storage backend (env REGISTRY_STORAGE; default: filesystem)",
    )
    group.add_argument(
        "--root",
        default=env.get("REGISTRY_ROOT", "./registry-data"),
        help="folder of the filesystem backend (env REGISTRY_ROOT; default: ./registry-data)",
    )
    group.add_argument(
        "--s3-bucket",
        default=env.get("REGISTRY_S3_BUCKET"),
        help="S3 bucket (env REGISTRY_S3_BUCKET); required with --storage s3",
    )
    group.add_argument(
        "--s3-prefix",
        default=env.get("REGISTRY_S3_PREFIX", ""),
        help="key prefix inside the bucket (env REGISTRY_S3_PREFIX)",
    )
    group.add_argument(
        "--s3-endpoint-url",
        default=env.get("REGISTRY_S3_ENDPOINT_URL"),
        help="S3 endpoint for non-AWS stores, e.g. http://127.0.0.1:8333 "
        "(env REGISTRY_S3_ENDPOINT_URL)",
    )
    group.add_argument(
        "--s3-region",
        default=env.get("REGISTRY_S3_REGION"),
        help="S3 region (env REGISTRY_S3_REGION)",
    )
    group.add_argument(
        "--s3-access-key",
        default=env.get("REGISTRY_S3_ACCESS_KEY"),
        help="access key id (env REGISTRY_S3_ACCESS_KEY; default: boto3's credential chain)",
    )
    group.add_argument(
        "--s3-secret-key",
        default=env.get("REGISTRY_S3_SECRET_KEY"),
        help="secret access key (env REGISTRY_S3_SECRET_KEY)",
    )
    group.add_argument(
        "--s3-redirect",
        action=argparse.BooleanOptionalAction,
        default=_flag(env, "REGISTRY_S3_REDIRECT"),
        help="answer blob GETs with a 307 to a presigned URL (env REGISTRY_S3_REDIRECT)",
    )
    group.add_argument(
        "--s3-part-size",
        type=int,
        default=int(env.get("REGISTRY_S3_PART_SIZE", 0) or 0) or None,
        help="multipart part size in bytes, at least 5 MiB (env REGISTRY_S3_PART_SIZE; "
        "default: 8 MiB)",
    )


def build(namespace: argparse.Namespace) -> Storage:
    """Create the storage backend the parsed options describe."""
    kind = namespace.storage
    if kind == "memory":
        from .memory import MemoryStorage

        return MemoryStorage()
    if kind == "filesystem":
        from .filesystem import FilesystemStorage

        return FilesystemStorage(namespace.root)
    if kind == "s3":
        if not namespace.s3_bucket:
            raise ValueError("--storage s3 needs --s3-bucket (or REGISTRY_S3_BUCKET)")
        if bool(namespace.s3_access_key) != bool(namespace.s3_secret_key):
            raise ValueError("--s3-access-key and --s3-secret-key go together")
        from .s3 import DEFAULT_PART_SIZE, S3Storage

        return S3Storage(
            namespace.s3_bucket,
            prefix=namespace.s3_prefix or "",
            endpoint_url=namespace.s3_endpoint_url,
            region=namespace.s3_region,
            access_key=namespace.s3_access_key,
            secret_key=namespace.s3_secret_key,
            redirect=namespace.s3_redirect,
            part_size=getattr(namespace, "s3_part_size", None) or DEFAULT_PART_SIZE,
        )
    raise ValueError(f"unknown storage backend: {kind!r}")


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
        if not os.path.isdir(root):  # checked first: the backend would create the folder
            raise ValueError(f"--root {root}: no such folder")
        if not any(os.path.isdir(os.path.join(root, top)) for top in _REGISTRY_FOLDERS):
            raise ValueError(f"--root {root} holds no registry (no blobs/ or repositories/ in it)")
    storage = build(namespace)
    if namespace.storage != "filesystem" and not _holds_registry(storage):
        storage.close()
        raise ValueError("the storage holds no registry (no blobs/ or repositories/ keys): "
                         "check --s3-bucket and --s3-prefix")
    return storage


def _holds_registry(storage: Storage) -> bool:
    return any(True for _ in storage.list("blobs/")) or any(True for _ in storage.list("repositories/"))
