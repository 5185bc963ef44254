"""The one route table: it drives both request routing and the URLs the registry hands out.

Each :class:`Route` names an endpoint, its path below ``/v2`` and, per HTTP method, the handler
and the repository actions it needs, as distribution's route descriptors do. The table is
compiled into a werkzeug :class:`~werkzeug.routing.Map`; names are matched loosely here and
validated by :func:`~docker_registry_wsgi.references.parse_name` in the app, so a bad name is a
``NAME_INVALID`` rather than a 404.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from werkzeug.routing import BaseConverter, Map, MapAdapter, Rule

from .auth.base import DELETE, PULL, PUSH

if TYPE_CHECKING:
    from .handlers.context import Handler

__all__ = ["Route", "Method", "RouteTable", "ROUTES"]


class _NameConverter(BaseConverter):
    """A repository name: one or more path components (validated later)."""

    regex = r"[^/].*?"
    part_isolating = False


@dataclass(frozen=True)
class Method:
    """What one HTTP method of a route does: its handler and the actions it needs on the repository."""

    handler: str
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """An endpoint of the API (OCI distribution spec, "Endpoints")."""

    endpoint: str
    paths: tuple[str, ...]
    methods: Mapping[str, Method] = field(default_factory=dict)


def _get(handler: str, *actions: str) -> dict[str, Method]:
    return {"GET": Method(handler, actions), "HEAD": Method(handler, actions)}


ROUTES: tuple[Route, ...] = (
    Route("base", ("/",), _get("base.check")),
    Route("catalog", ("/_catalog",), {"GET": Method("catalog.list_repositories")}),
    Route("tags", ("/<name:name>/tags/list",), {"GET": Method("tags.list_tags", (PULL,))}),
    Route(
        "manifest",
        ("/<name:name>/manifests/<reference>",),
        {
            **_get("manifests.get_manifest", PULL),
            "PUT": Method("manifests.put_manifest", (PULL, PUSH)),
            "DELETE": Method("manifests.delete_manifest", (DELETE,)),
        },
    ),
    Route(
        "uploads",
        ("/<name:name>/blobs/uploads/", "/<name:name>/blobs/uploads"),
        {"POST": Method("uploads.start_upload", (PULL, PUSH))},
    ),
    Route(
        "upload",
        ("/<name:name>/blobs/uploads/<upload_id>",),
        {
            "GET": Method("uploads.upload_status", (PUSH,)),
            "PATCH": Method("uploads.patch_upload", (PUSH,)),
            "PUT": Method("uploads.finish_upload", (PUSH,)),
            # Cancelling is part of pushing (containers/image cancels with push scope only).
            "DELETE": Method("uploads.cancel_upload", (PUSH,)),
        },
    ),
    Route(
        "blob",
        ("/<name:name>/blobs/<digest>",),
        {**_get("blobs.get_blob", PULL), "DELETE": Method("blobs.delete_blob", (DELETE,))},
    ),
    Route("referrers", ("/<name:name>/referrers/<digest>",), _get("referrers.list_referrers", PULL)),
)


class RouteTable:
    """The compiled routes: match a path below ``/v2``, and build URLs back."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = {route.endpoint: route for route in routes}
        self.map = Map(
            [Rule(path, endpoint=route.endpoint) for route in routes for path in route.paths],
            converters={"name": _NameConverter},
            strict_slashes=False,
            merge_slashes=False,
        )
        self._adapter = self.map.bind("localhost")

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of ``path`` (below ``/v2``) and its parameters, or ``None``."""
        try:
            endpoint, values = self._adapter.match(path, method=None)
        except Exception:  # werkzeug's NotFound / RequestRedirect: no endpoint here
            return None
        return self.routes[str(endpoint)], values

    def path(self, endpoint: str, **values: str) -> str:
        """The path below ``/v2`` of an endpoint, e.g. ``path("blob", name=..., digest=...)``."""
        return self._adapter.build(endpoint, values)


Builder = Callable[..., str]
