"""Which names are mirrored, and the per-process state of each mirror (connections, fills).

:class:`Mirrors` is what :class:`~docker_registry_wsgi.app.Registry` takes as ``mirrors=``. For
each request on a repository, the app asks :meth:`Mirrors.check`: a name inside a mirrored
namespace gets a :class:`MirrorRoute` (the longest namespace wins; ``""`` is every name), and a
method that would push or delete there is refused with 405 ``UNSUPPORTED`` before the auth hook
is asked, as distribution does for a pull-through cache (docker-registry-http-api-v2.md, "PUT
Manifest", "DELETE Manifest", "Initiate Blob Upload", "DELETE Blob": *On Failure: Not allowed*).
The handlers then get a :class:`~.content.MirroredContent` for that one request.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from werkzeug.wrappers import Request

from ..auth.base import DELETE, PUSH
from ..content import RegistryContent, StoredManifest
from ..digests import Digest
from ..errors import (
    BlobUnknown,
    Denied,
    MethodNotAllowed,
    NameUnknown,
    RegistryError,
    TooManyRequests,
    UpstreamFailed,
)
from ..routes import Route
from .config import Mirror
from .content import MirroredContent
from .fills import Fills
from .flights import Flights
from .upstream import Upstream, UpstreamError

__all__ = ["Mirrors", "MirrorRoute", "MirrorState"]

_WRITES = frozenset({PUSH, DELETE})


@dataclass
class MirrorState:
    """One mirror in one process: its settings, its upstream client, its fills and flights."""

    mirror: Mirror
    upstream: Upstream
    fills: Fills
    clock: Callable[[], float]
    log: logging.Logger
    flights: Flights[StoredManifest] = field(default_factory=Flights)

    def upstream_name(self, name: str) -> str:
        """The upstream's name for the local ``name`` (inside the namespace)."""
        rest = name[len(self.mirror.namespace) + 1:] if self.mirror.namespace else name
        return self.upstream.upstream_name(rest)

    def error(self, exc: UpstreamError, unknown: type[RegistryError], detail: Mapping[str, str]) -> RegistryError:
        """The client's error for an upstream failure, naming the upstream and what it said."""
        full = {**detail, "upstream": self.upstream.url}
        if exc.not_found:
            return unknown(full, message=f"{unknown.message} (upstream {exc.upstream}: {exc.reason})")
        if exc.status == 429:
            headers = {"Retry-After": exc.retry_after} if exc.retry_after else None
            return TooManyRequests(full, headers=headers,
                                   message=f"the upstream {exc.upstream} is rate-limiting this registry: {exc.reason}")
        if exc.denied:
            return Denied(full, message=f"the upstream {exc.upstream} refused: {exc.reason}")
        return UpstreamFailed(full, message=f"the upstream {exc.upstream} failed: {exc.reason}")


@dataclass(frozen=True)
class MirrorRoute:
    """A request's repository inside a mirrored namespace."""

    runtime: MirrorState
    local_name: str
    upstream_name: str

    def content(self, base: RegistryContent, request: Request) -> MirroredContent:
        """The content the handlers use for this request."""
        return MirroredContent(base, self, request.method)


class Mirrors:
    """The mirrored namespaces of a registry; see the module docstring.

    ``clock`` (tag ages, fill leases) and ``sleep`` (waiting for another process's fill) are
    injectable for tests; ``max_fills`` bounds the fills running in one process (more requests
    stream from the upstream without storing), ``stall_timeout`` how long a fill waits for a
    client that reads nothing before dropping it.
    """

    def __init__(
        self,
        mirrors: Iterable[Mirror],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        logger: logging.Logger | None = None,
        max_fills: int = 32,
        stall_timeout: float = 60.0,
    ) -> None:
        self.log = logger or logging.getLogger("docker_registry_wsgi.proxy")
        self.clock = clock
        states = []
        seen: set[str] = set()
        for mirror in mirrors:
            if mirror.namespace in seen:
                raise ValueError(f"namespace {mirror.namespace or '(every name)'} is mirrored twice")
            seen.add(mirror.namespace)
            upstream = Upstream(mirror.url, username=mirror.username, password=mirror.password,
                                timeout=mirror.timeout, ca_file=mirror.ca_file, clock=clock)
            state = MirrorState(mirror, upstream, Fills(clock=clock, sleep=sleep, logger=self.log,
                                                        max_fills=max_fills, stall_timeout=stall_timeout),
                                clock, self.log)
            state.fills.upstream_error = _blob_error(state)
            states.append(state)
        # Longest namespace first: "hub/library" wins over "hub" for "hub/library/alpine".
        self.states = sorted(states, key=lambda s: -len(s.mirror.namespace))

    @property
    def mirrors(self) -> list[Mirror]:
        return [state.mirror for state in self.states]

    def route(self, name: str) -> MirrorRoute | None:
        """The mirror serving ``name``, or ``None`` for an ordinary repository."""
        for state in self.states:
            namespace = state.mirror.namespace
            if not namespace or name.startswith(namespace + "/"):
                return MirrorRoute(state, name, state.upstream_name(name))
            if name == namespace:
                return MirrorRoute(state, name, "")
        return None

    def check(self, name: str, route: Route, method: str) -> MirrorRoute | None:
        """The mirror of ``name`` for this request; refuses pushes and deletes there (405).

        Called before the auth hook: the answer is the same for every caller.
        """
        found = self.route(name)
        if found is None:
            return None
        wanted = route.methods.get(method)
        if wanted is not None and _WRITES & set(wanted.actions):
            allowed = ", ".join(m for m, spec in route.methods.items() if not _WRITES & set(spec.actions))
            raise MethodNotAllowed(
                {"name": name, "method": method},
                message=f"{name} is a read-only mirror of {found.runtime.upstream.url}: "
                        "pushing and deleting are not supported there",
                headers={"Allow": allowed},
            )
        if not found.upstream_name:
            raise NameUnknown({"name": name},
                              message=f"{name} is the namespace of a mirror; its repositories are below it")
        return found

    def close(self) -> None:
        """Close the upstreams' idle connections."""
        for state in self.states:
            state.upstream.close()


def _blob_error(state: MirrorState) -> Callable[[UpstreamError, Digest], RegistryError]:
    """How the fills of ``state`` report an upstream failure to the requests that waited."""

    def error(exc: UpstreamError, digest: Digest) -> RegistryError:
        return state.error(exc, BlobUnknown, {"digest": str(digest)})

    return error
