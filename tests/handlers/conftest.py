"""Fixtures: the registry over MemoryStorage and over FilesystemStorage (in ``tmp_path``), driven
through WSGI with WebTest, plus a recording auth hook."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest
import webtest
from werkzeug.wrappers import Request

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

from . import RegistryClient


@pytest.fixture(params=["memory", "filesystem"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each handler test runs on both bundled backends."""
    if request.param == "memory":
        return MemoryStorage()
    return FilesystemStorage(tmp_path / "registry-root")


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


class RecordingAuth:
    """An auth hook that allows everything and records the access each request asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Access]]] = []

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        self.calls.append((request.method, request.path, list(needed)))
        return "recorded-user"

    def reset(self) -> None:
        self.calls.clear()

    @property
    def last(self) -> list[Access]:
        return self.calls[-1][2]


@pytest.fixture
def recording_auth() -> RecordingAuth:
    return RecordingAuth()


@pytest.fixture
def recorded_app(storage: Storage, recording_auth: RecordingAuth) -> webtest.TestApp:
    """The registry with the recording hook (so ``mount`` without ``from`` is refused by default)."""
    return webtest.TestApp(Registry(storage=storage, auth=recording_auth))
