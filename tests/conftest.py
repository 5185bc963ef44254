"""Fixtures shared by the whole suite; per-area fixtures live in each folder's conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

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
