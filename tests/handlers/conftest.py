"""Fixtures: the registry over MemoryStorage and over FilesystemStorage (in ``tmp_path``), driven
through WSGI with WebTest, plus a recording auth hook."""

from __future__ import annotations


import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import Storage

from . import RecordingAuth, RegistryClient


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
