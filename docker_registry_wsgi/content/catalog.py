"""The catalog: which repositories exist, one empty key each (listed by :mod:`.listings`)."""

from __future__ import annotations

from ..storage.base import Storage
from .paths import catalog_key, exists

__all__ = ["Catalog"]


class Catalog:
    """The repositories of one storage."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def exists(self, name: str) -> bool:
        return exists(self.storage, catalog_key(name))

    def register(self, name: str) -> None:
        """Record that ``name`` exists (idempotent); called by whatever links content into it."""
        key = catalog_key(name)
        if not exists(self.storage, key):
            self.storage.write(key, b"")
