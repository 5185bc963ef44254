"""Two standalone registry processes over one store (an S3 bucket, or one folder).

Each registry runs one gunicorn worker, so the two processes share nothing but the storage:
whatever one starts, the other must be able to continue. The S3 flavour uses the session's
SeaweedFS (from :mod:`tests.support.seaweedfs`); under CI it fails rather than skips.
"""

from __future__ import annotations

import secrets
from typing import Iterator

import pytest

from tests.scaleout.hosts import PART_SIZE, Hosts
from tests.support.seaweedfs import S3Bucket
from tests.support.servers import RegistryServer

@pytest.fixture(scope="module", params=["s3", "filesystem"])
def store(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[str]]:
    """The kind of shared storage and the server options that point at it."""
    if request.param == "s3":
        bucket: S3Bucket = request.getfixturevalue("s3_bucket")
        prefix = "scaleout-" + secrets.token_hex(4)
        return "s3", [*bucket.server_args(prefix), f"--s3-part-size={PART_SIZE}"]
    root = tmp_path_factory.mktemp("shared-root")
    return "filesystem", ["--storage=filesystem", f"--root={root}"]


@pytest.fixture(scope="module")
def registries(store: tuple[str, list[str]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RegistryServer]]:
    """Two registry processes (one worker each) over the same storage."""
    kind, args = store
    folder = tmp_path_factory.mktemp(f"registries-{kind}")
    servers: list[RegistryServer] = []
    try:
        for name in ("a", "b"):
            # RegistryServer passes --root first; the store's own --root (if any) comes later and wins.
            server = RegistryServer(
                folder / f"unused-root-{name}",
                extra_args=[*args, "--workers=1", "--threads=8", "--access-log"],
                log_path=folder / f"registry-{name}.log",
                show_log_on_stop=False,
            )
            servers.append(server.start())
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def hosts(registries: list[RegistryServer]) -> Hosts:
    return Hosts(server.hostport for server in registries)


@pytest.fixture
def repository() -> str:
    return "scaleout/r" + secrets.token_hex(4)

