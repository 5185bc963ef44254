"""Listings: the catalog, a repository's tags and a manifest's referrers (spec "Listing Tags", "Listing Referrers")."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from ..digests import Digest
from ..errors import NameUnknown
from ..storage.base import KeyNotFound, Storage
from .catalog import Catalog
from .paths import referrers_prefix, tags_prefix

__all__ = ["Page", "page", "Listings"]


@dataclass(frozen=True)
class Page:
    """One page of a listing, and whether more follow (for the ``Link`` header)."""

    items: list[str]
    more: bool


def page(items: Iterator[str], n: int | None) -> Page:
    """The first ``n`` of ``items`` (all of them for ``None``), reading one more to know if more follow."""
    if n is None:
        return Page(list(items), False)
    taken: list[str] = []
    for item in items:
        if len(taken) == n:
            return Page(taken, True)
        taken.append(item)
    return Page(taken, False)


class Listings:
    """The repositories, and the tags and referrers of each, read from the key layout."""

    def __init__(self, storage: Storage, catalog: Catalog) -> None:
        self.storage, self.catalog = storage, catalog

    def repositories(self, n: int | None, last: str | None) -> Page:
        """Repository names in lexical order after ``last``, at most ``n``."""
        names = sorted(k.replace("+", "/") for k in self.storage.list("catalog/"))
        if last is not None:
            names = [x for x in names if x > last]
        return page(iter(names), n)

    def tags(self, name: str, n: int | None, last: str | None) -> Page:
        """Tags of ``name`` in lexical order after ``last``; :class:`NameUnknown` for no repository."""
        found = page(self.storage.list(tags_prefix(name), start_after=last), n)
        if not found.items and not self.catalog.exists(name):
            raise NameUnknown({"name": name})
        return found

    def referrers(self, name: str, subject: Digest, artifact_type: str | None) -> list[dict[str, Any]]:
        """Descriptors of the manifests in ``name`` whose ``subject`` is ``subject``."""
        prefix = referrers_prefix(name, subject)
        found = []
        for key in self.storage.list(prefix):
            try:
                descriptor = json.loads(self.storage.read(prefix + key))
            except KeyNotFound:
                continue
            if artifact_type is None or descriptor.get("artifactType") == artifact_type:
                found.append(descriptor)
        return found
