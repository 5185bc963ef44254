"""Fixtures for the pull-through cache: an upstream registry on loopback and the cache in front.

The upstream is a real registry served over HTTP on 127.0.0.1 (:class:`~.upstreams.UpstreamSite`)
with filesystem storage, so its bytes can be corrupted on disk. The cache is a
:class:`~docker_registry_wsgi.Registry` with ``mirrors=`` over each local backend, driven
through WSGI with WebTest (memory, filesystem and S3 on SeaweedFS); its clock is a
:class:`~.upstreams.FakeClock`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.proxy import Mirror, Mirrors
from docker_registry_wsgi.storage import FilesystemStorage, MemoryStorage, Storage

from .upstreams import WAIT, FakeClock, UpstreamSite

#: The cache's tag TTL in these tests.
TTL = 300.0


@pytest.fixture(params=["memory", "filesystem", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """The cache's storage: each backend, S3 on a fresh prefix of the session's SeaweedFS bucket."""
    if request.param == "memory":
        return MemoryStorage()
    if request.param == "filesystem":
        return FilesystemStorage(tmp_path / "cache")
    from docker_registry_wsgi.storage.s3 import S3Storage

    bucket = request.getfixturevalue("s3_bucket")
    return S3Storage(bucket.name, "proxy-" + os.urandom(6).hex(), endpoint_url=bucket.endpoint_url,
                     region=bucket.region, access_key=bucket.access_key, secret_key=bucket.secret_key,
                     client=bucket.shared_client)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[UpstreamSite]:
    """A registry without auth on a loopback port, storing under ``tmp_path/upstream``."""
    registry = Registry(FilesystemStorage(tmp_path / "upstream"))
    site = UpstreamSite(registry).start()
    yield site
    site.stop()


@pytest.fixture
def mirrors(upstream: UpstreamSite, clock: FakeClock) -> Iterator[Mirrors]:
    """``up/...`` mirrors the upstream; the clock is the test's."""
    found = Mirrors([Mirror("up", upstream.url, tag_ttl=TTL)], clock=clock)
    yield found
    settle(found)
    found.close()


@pytest.fixture
def cache(storage: Storage, mirrors: Mirrors) -> Registry:
    return Registry(storage, mirrors=mirrors)


@pytest.fixture
def client(cache: Registry) -> webtest.TestApp:
    return webtest.TestApp(cache)


def settle(mirrors: Mirrors) -> None:
    """Wait for every fill thread of ``mirrors`` to end (a fill outlives the request that began it)."""
    for state in mirrors.states:
        for thread in list(state.fills.threads):
            thread.join(WAIT)
            assert not thread.is_alive(), f"{thread.name} did not end"
