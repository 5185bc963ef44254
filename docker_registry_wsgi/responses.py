"""The registry's WSGI response: a status, a header list and a body iterable, nothing more.

werkzeug's ``Response`` normalises and re-validates headers on every call; on the small requests
a fleet makes (``HEAD`` blob, manifest ``GET``) that was a fifth of the registry's own time, so
the handlers build this instead. Every response carries the API version header.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Iterable

from .errors import RegistryError
from .wsgi import StartResponse, WSGIEnvironment

__all__ = ["Reply", "API_VERSION_HEADER", "error_reply"]

#: Sent on every response, as the Docker Registry HTTP API V2 requires.
API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

_STATUS_LINES = {s.value: f"{s.value} {s.phrase}" for s in HTTPStatus}


class Reply:
    """A WSGI response; ``HEAD`` requests get the headers and no body."""

    __slots__ = ("status", "headers", "body")

    def __init__(
        self,
        status: int,
        headers: Iterable[tuple[str, str]] = (),
        body: Iterable[bytes] = (),
        content_type: str | None = None,
    ) -> None:
        self.status = status
        self.headers: list[tuple[str, str]] = [API_VERSION_HEADER, *headers]
        if content_type is not None:
            self.headers.append(("Content-Type", content_type))
        self.body = body

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        start_response(_STATUS_LINES.get(self.status, str(self.status)), self.headers)
        if environ.get("REQUEST_METHOD") == "HEAD":
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
            return []
        return self.body


def error_reply(error: RegistryError, location: str | None = None) -> Reply:
    """``error`` as the spec's JSON error response, with its own headers and ``location`` (its link's URL)."""
    payload = json.dumps(error.body()).encode()
    headers = [("Content-Length", str(len(payload))), *error.headers.items()]
    if location is not None:
        headers.append(("Location", location))
    return Reply(error.status, headers, [payload], "application/json")
