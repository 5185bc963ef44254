"""The access vocabulary: the actions a request needs on a resource, as the token auth spec names them.

Neutral ground for the route table (which declares what each endpoint needs) and the auth
hooks (which decide whether a caller has it); neither imports the other for these words.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Access", "PULL", "PUSH", "DELETE"]

PULL, PUSH, DELETE = "pull", "push", "delete"


@dataclass(frozen=True)
class Access:
    """One resource and the actions a request needs on it, as in a token ``scope``.

    ``Access("repository", "library/alpine", frozenset({"pull"}))`` is
    ``repository:library/alpine:pull``; the catalog is ``Access("registry", "catalog", {"*"})``.
    """

    type: str
    name: str
    actions: frozenset[str]

    @classmethod
    def repository(cls, name: str, *actions: str) -> "Access":
        return cls("repository", name, frozenset(actions))

    @classmethod
    def catalog(cls) -> "Access":
        return cls("registry", "catalog", frozenset({"*"}))

    @property
    def scope(self) -> str:
        """The scope string of the token auth spec, e.g. ``repository:a/b:pull,push``."""
        return f"{self.type}:{self.name}:{','.join(sorted(self.actions))}"
