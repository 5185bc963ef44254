"""The WSGI protocol's types (PEP 3333), named once for every module that speaks WSGI."""

from __future__ import annotations

from typing import Any, Callable, Iterable

__all__ = ["WSGIEnvironment", "StartResponse", "WSGIApp"]

#: The request's ``environ``.
WSGIEnvironment = dict[str, Any]
#: ``start_response(status, headers, exc_info=None)``; returns ``write`` (unused here).
StartResponse = Callable[..., Any]
#: A WSGI application.
WSGIApp = Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]
