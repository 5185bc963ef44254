"""The storage conformance suite on :class:`MemoryStorage`."""

from __future__ import annotations

import pytest

from docker_registry_wsgi.storage import MemoryStorage
from docker_registry_wsgi.testing import StorageSuite


class TestMemoryStorage(StorageSuite):
    @pytest.fixture
    def storage(self) -> MemoryStorage:
        return MemoryStorage()
