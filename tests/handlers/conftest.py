"""Fixtures: the registry over MemoryStorage and over FilesystemStorage (in ``tmp_path``), driven
through WSGI with WebTest, plus a recording auth hook."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Iterator

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

from . import RecordingAuth, RegistryClient


@pytest.fixture(params=["memory", "filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def every_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    """Each backend in turn, S3 included (SeaweedFS, a fresh prefix, the smallest legal part)."""
    if request.param == "memory":
        yield MemoryStorage()
    elif request.param == "filesystem":
        yield FilesystemStorage(tmp_path / "registry")
    else:
        from docker_registry_wsgi.storage.s3 import MIN_PART_SIZE, S3Storage

        bucket = request.getfixturevalue("s3_bucket")
        storage = S3Storage(bucket.name, "handlers-" + secrets.token_hex(6), endpoint_url=bucket.endpoint_url,
                            region=bucket.region, access_key=bucket.access_key, secret_key=bucket.secret_key,
                            client=bucket.shared_client, part_size=MIN_PART_SIZE)
        yield storage
        storage.close()


@pytest.fixture
def registry(storage: Storage) -> Registry:
    return Registry(storage=storage)


@pytest.fixture
def app(registry: Registry) -> webtest.TestApp:
    """The registry as the root WSGI app (``PATH_INFO=/v2/...``), with WebTest's WSGI lint on."""
    return webtest.TestApp(registry)


@pytest.fixture
def client(app: webtest.TestApp) -> RegistryClient:
    return RegistryClient(app)


@pytest.fixture
def recording_auth() -> RecordingAuth:
    return RecordingAuth()


@pytest.fixture
def recorded_app(storage: Storage, recording_auth: RecordingAuth) -> webtest.TestApp:
    """The registry with the recording hook (so ``mount`` without ``from`` is refused by default)."""
    return webtest.TestApp(Registry(storage=storage, auth=recording_auth))
