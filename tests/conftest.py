"""Fixtures shared by the whole suite; per-area fixtures live in each folder's conftest.py."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import pytest

from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

if TYPE_CHECKING:
    from tests.support.webhook_receiver import Receiver

#: SeaweedFS (a real S3-compatible store) for every folder that needs one: ``seaweedfs``, ``s3_bucket``.
pytest_plugins = ["tests.support.seaweedfs"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["memory", "filesystem"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each built-in local backend in turn."""
    if request.param == "memory":
        return MemoryStorage()
    return FilesystemStorage(tmp_path / "registry")


@pytest.fixture
def repo_root() -> Path:
    """The checkout's top folder."""
    return REPO_ROOT


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs: a real full disk (needs the right to mount, as root in CI has)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()}): needs root")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def webhook_receiver() -> Iterator["Receiver"]:
    """A webhook endpoint on loopback (tests/support/webhook_receiver.py), stopped afterwards."""
    from tests.support.webhook_receiver import Receiver

    receiver = Receiver()
    yield receiver
    receiver.stop()
