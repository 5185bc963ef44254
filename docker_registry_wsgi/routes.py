"""The one route table: it drives both request routing and the URLs the registry hands out.

Each :class:`Route` names an endpoint, its path below ``/v2`` and, per HTTP method, the handler
and the access it needs (the repository actions, and how they apply to the request), as
distribution's route descriptors do. A path template's
``<name>`` is a repository name of one or more components, matched loosely here and validated
by :func:`~docker_registry_wsgi.references.parse_name` in the app (so a bad name is
``NAME_INVALID``, not a 404); any other ``<param>`` is one path segment. Templates compile to
anchored regular expressions for matching and to format strings for building.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import re
from urllib.parse import quote

from .access import DELETE, PULL, PUSH, Access
from .handlers import base, blobs, catalog, manifests, referrers, tags, uploads
from .handlers.context import Handler
from .references import parse_name

__all__ = ["Route", "Method", "RouteTable", "ROUTES", "REGISTRY_PREFIX", "is_registry_path",
           "repository_access", "mount_access", "catalog_access", "no_access"]

#: The path every registry client calls, fixed by the Docker Registry HTTP API V2.
REGISTRY_PREFIX = "/v2"


def is_registry_path(path: str) -> bool:
    """Whether ``path`` is ``/v2`` or below it (``/v2x`` and ``/v20/...`` are not)."""
    return path == REGISTRY_PREFIX or path.startswith(REGISTRY_PREFIX + "/")


_PARAM = re.compile(r"<(\w+)>")


def _compile(template: str) -> re.Pattern[str]:
    """``/<name>/blobs/<digest>`` -> an anchored regex with one named group per parameter."""
    pattern, position = "", 0
    for match in _PARAM.finditer(template):
        pattern += re.escape(template[position : match.start()])
        param = match[1]
        pattern += f"(?P<{param}>[^/].*?)" if param == "name" else f"(?P<{param}>[^/]+)"
        position = match.end()
    return re.compile(pattern + re.escape(template[position:]) + r"\Z")


#: What a request on a route needs: from the method's actions, the path's parameters and the query.
Needs = Callable[[tuple[str, ...], Mapping[str, str], Mapping[str, str]], list[Access]]


def repository_access(actions: tuple[str, ...], params: Mapping[str, str],
                      query: Mapping[str, str]) -> list[Access]:
    """The method's actions on the path's repository."""
    return [Access.repository(params["name"], *actions)]


def mount_access(actions: tuple[str, ...], params: Mapping[str, str],
                 query: Mapping[str, str]) -> list[Access]:
    """As :func:`repository_access`, plus ``pull`` on a mount's ``from`` repository (spec "Mounting a blob")."""
    needed = repository_access(actions, params, query)
    source = query.get("from")
    if source and query.get("mount"):
        needed.append(Access.repository(parse_name(source), PULL))
    return needed


def catalog_access(actions: tuple[str, ...], params: Mapping[str, str],
                   query: Mapping[str, str]) -> list[Access]:
    """``registry:catalog:*``, as distribution's token scopes name the catalog."""
    return [Access.catalog()]


def no_access(actions: tuple[str, ...], params: Mapping[str, str],
              query: Mapping[str, str]) -> list[Access]:
    """Nothing: ``/v2/`` answers everyone (an auth hook may still challenge, see :class:`~.auth.Auth`)."""
    return []


@dataclass(frozen=True)
class Method:
    """What one HTTP method of a route does: its handler, its actions, and the access that needs."""

    handler: Handler
    actions: tuple[str, ...] = ()
    needs: Needs = repository_access

    def access(self, params: Mapping[str, str], query: Mapping[str, str]) -> list[Access]:
        """The access a request with these path parameters and query needs."""
        return self.needs(self.actions, params, query)


@dataclass(frozen=True)
class Route:
    """An endpoint of the API (OCI distribution spec, "Endpoints")."""

    endpoint: str
    paths: tuple[str, ...]
    methods: Mapping[str, Method] = field(default_factory=dict)


def _get(handler: Handler, *actions: str, needs: Needs = repository_access) -> dict[str, Method]:
    return {"GET": Method(handler, actions, needs), "HEAD": Method(handler, actions, needs)}


ROUTES: tuple[Route, ...] = (
    Route("base", ("/",), _get(base.check, needs=no_access)),
    Route("catalog", ("/_catalog",), {"GET": Method(catalog.list_repositories, needs=catalog_access)}),
    Route("tags", ("/<name>/tags/list",), {"GET": Method(tags.list_tags, (PULL,))}),
    Route(
        "manifest",
        ("/<name>/manifests/<reference>",),
        {
            **_get(manifests.get_manifest, PULL),
            "PUT": Method(manifests.put_manifest, (PULL, PUSH)),
            "DELETE": Method(manifests.delete_manifest, (DELETE,)),
        },
    ),
    Route(
        "uploads",
        ("/<name>/blobs/uploads/", "/<name>/blobs/uploads"),
        {"POST": Method(uploads.start_upload, (PULL, PUSH), mount_access)},
    ),
    Route(
        "upload",
        ("/<name>/blobs/uploads/<upload_id>",),
        {
            "GET": Method(uploads.upload_status, (PUSH,)),
            "PATCH": Method(uploads.patch_upload, (PUSH,)),
            "PUT": Method(uploads.finish_upload, (PUSH,)),
            # Cancelling is part of pushing (containers/image cancels with push scope only).
            "DELETE": Method(uploads.cancel_upload, (PUSH,)),
        },
    ),
    Route(
        "blob",
        ("/<name>/blobs/<digest>",),
        {**_get(blobs.get_blob, PULL), "DELETE": Method(blobs.delete_blob, (DELETE,))},
    ),
    Route("referrers", ("/<name>/referrers/<digest>",), _get(referrers.list_referrers, PULL)),
)


def _literal_after_name(template: str) -> str:
    """``/<name>/blobs/<digest>`` -> ``/blobs/``: text every matching path must contain."""
    _, _, rest = template.partition("<name>")
    return _PARAM.split(rest, maxsplit=1)[0] if rest else ""


class RouteTable:
    """The compiled routes: match a path below ``/v2``, and build URLs back."""

    def __init__(self, routes: tuple[Route, ...] = ROUTES) -> None:
        self.routes = {route.endpoint: route for route in routes}
        # Each pattern comes with the literal that follows <name>, a cheap test before the regex.
        self._patterns = [
            (_literal_after_name(path), _compile(path), route)
            for route in routes
            for path in route.paths
        ]
        # The first template of a route is the one URLs are built from.
        self._templates = {route.endpoint: route.paths[0] for route in routes}

    def match(self, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route of ``path`` (below ``/v2``) and its parameters, or ``None``."""
        for literal, pattern, route in self._patterns:
            if literal not in path:
                continue
            found = pattern.match(path)
            if found is not None:
                return route, found.groupdict()
        return None

    def path(self, endpoint: str, **values: str) -> str:
        """The path below ``/v2`` of an endpoint, e.g. ``path("blob", name=..., digest=...)``."""
        return _PARAM.sub(lambda m: quote(values[m[1]], safe="/:"), self._templates[endpoint])
