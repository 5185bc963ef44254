"""What a handler gets: the request, the registry content, the caller and URL building."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlencode

from werkzeug.wrappers import Request, Response

from ..content import Page, RegistryContent
from ..errors import API_VERSION_HEADER, Unsupported
from ..routes import RouteTable

__all__ = ["Context", "Handler", "respond", "json_response", "pagination", "next_link"]


@dataclass
class Context:
    """One request on its way through a handler."""

    request: Request
    content: RegistryContent
    routes: RouteTable
    #: The absolute URL of ``/v2`` as the client sees it, e.g. ``http://host:5000/v2``.
    base_url: str
    params: dict[str, str]
    identity: object = None
    #: Whether ``POST ?mount=`` without ``from`` may link a blob found in any repository.
    allow_mount_anywhere: bool = False

    @property
    def head(self) -> bool:
        return self.request.method == "HEAD"

    def url(self, endpoint: str, **values: str) -> str:
        """The absolute URL of an endpoint, built from the route table."""
        return self.base_url + self.routes.path(endpoint, **values)


Handler = Callable[[Context], Response]


def respond(
    status: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | Iterable[bytes] = b"",
    content_type: str | None = None,
    *,
    direct: bool = False,
) -> Response:
    """A response with the API version header; ``direct`` passes an iterable through untouched."""
    response = Response(body, status=status, content_type=content_type, direct_passthrough=direct)
    response.headers[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
    if content_type is None:
        del response.headers["Content-Type"]
    if headers:
        for name, value in headers.items():
            response.headers[name] = value
    return response


def json_response(ctx: Context, document: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = "application/json") -> Response:
    body = json.dumps(document).encode()
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    return respond(200, all_headers, b"" if ctx.head else body, content_type)


def pagination(ctx: Context) -> tuple[int | None, str | None]:
    """The ``n`` and ``last`` query parameters of a listing (spec "Listing Tags")."""
    raw_n = ctx.request.args.get("n")
    last = ctx.request.args.get("last") or None
    if raw_n is None or raw_n == "":
        return None, last
    if not raw_n.isdigit() or len(raw_n) > 9:
        raise Unsupported({"n": raw_n[:20]}, message="n must be a non-negative integer")
    return int(raw_n), last


def next_link(ctx: Context, endpoint: str, page: Page, n: int | None, **values: str) -> dict[str, str]:
    """The ``Link: <...>; rel="next"`` header of a page that has more after it."""
    if not page.more or not page.items or n is None:
        return {}
    query = urlencode({"n": n, "last": page.items[-1]})
    return {"Link": f'<{ctx.url(endpoint, **values)}?{query}>; rel="next"'}
