"""What a handler gets: the request, the registry content, the caller and URL building."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Iterable, Mapping, Protocol
from urllib.parse import quote, urlencode

from werkzeug.wrappers import Request

from ..content import Page, RegistryContent
from ..errors import PaginationNumberInvalid
from ..events import Happened
from ..responses import Reply
from ..wsgi import WSGIEnvironment

_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_MAX_N_DIGITS = 9

__all__ = ["Context", "Handler", "URLs", "base_url", "respond", "json_response", "pagination", "next_link"]


class URLs(Protocol):
    """Builds the path below ``/v2`` of an endpoint (the route table does)."""

    def path(self, endpoint: str, **values: str) -> str: ...


def base_url(environ: WSGIEnvironment, base_path: str) -> str:
    """The absolute URL of ``/v2``, e.g. ``http://host:5000/v2``, from the request's ``Host``."""
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST")
    if not host:
        host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}{quote(base_path)}"


@dataclass
class Context:
    """One request on its way through a handler."""

    request: Request
    content: RegistryContent
    routes: URLs
    #: The path of ``/v2`` as the client sees it (``SCRIPT_NAME`` included).
    base_path: str
    params: dict[str, str]
    identity: object = None
    #: What the request did, for the app to publish once the handler returned.
    events: list[Happened] = field(default_factory=list)
    #: The actions some event subscriber listens for now: only these are recorded.
    event_actions: frozenset[str] = frozenset()

    @property
    def head(self) -> bool:
        return self.request.method == "HEAD"

    @cached_property
    def base_url(self) -> str:
        """The absolute URL of ``/v2``, e.g. ``http://host:5000/v2``, from the request's ``Host``."""
        return base_url(self.request.environ, self.base_path)

    def url(self, endpoint: str, **values: str) -> str:
        """The absolute URL of an endpoint, built from the route table."""
        return self.base_url + self.routes.path(endpoint, **values)

    def wants(self, action: str) -> bool:
        """Whether an event of ``action`` would be recorded (to skip work done only for it)."""
        return action in self.event_actions

    def record(self, action: str, kind: str, *, digest: str | None = None, tag: str | None = None,
               media_type: str | None = None, size: int | None = None,
               from_repository: str | None = None) -> None:
        """Note an event of this request's repository (see :mod:`~docker_registry_wsgi.events`)."""
        if action not in self.event_actions:
            return
        name = self.params["name"]
        url = None
        if digest is not None and action != "delete":  # distribution's deletes have no URL
            url = (self.url("blob", name=name, digest=digest) if kind == "blob"
                   else self.url("manifest", name=name, reference=digest))
        self.events.append(Happened(action, kind, name, digest, media_type, size, tag,
                                    from_repository, url))


Handler = Callable[[Context], Reply]


def respond(
    status: int,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    body: Iterable[bytes] = (),
    content_type: str | None = None,
) -> Reply:
    """A response; ``headers`` is a mapping or a list of pairs (for repeated headers)."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    return Reply(status, pairs, body, content_type)


def json_response(document: Any, headers: Mapping[str, str] | None = None,
                  content_type: str = "application/json") -> Reply:
    """A 200 response with ``document`` as its JSON body."""
    body = json.dumps(document).encode()
    all_headers = {"Content-Length": str(len(body)), **(headers or {})}
    return respond(200, all_headers, [body], content_type)


def pagination(ctx: Context) -> tuple[int | None, str | None]:
    """The ``n`` and ``last`` query parameters of a listing (spec "Listing Tags").

    ``n`` is ASCII digits only (``str.isdigit`` also takes ``²`` and ``①``, which ``int`` refuses)
    and at most 999,999,999; anything else is PAGINATION_NUMBER_INVALID (docker API, "Catalog").
    """
    if not ctx.request.environ.get("QUERY_STRING"):
        return None, None
    raw_n = ctx.request.args.get("n")
    last = ctx.request.args.get("last") or None
    if raw_n is None or raw_n == "":
        return None, last
    if not (raw_n.isascii() and raw_n.isdigit()) or len(raw_n.lstrip("0")) > _MAX_N_DIGITS:
        raise PaginationNumberInvalid({"n": raw_n[:20]},
                                      message="n must be a non-negative integer below 10^9")
    return int(raw_n), last


def next_link(ctx: Context, endpoint: str, page: Page, n: int | None, **values: str) -> dict[str, str]:
    """The ``Link: <...>; rel="next"`` header of a page that has more after it."""
    if not page.more or not page.items or n is None:
        return {}
    query = urlencode({"n": n, "last": page.items[-1]})
    return {"Link": f'<{ctx.url(endpoint, **values)}?{query}>; rel="next"'}
