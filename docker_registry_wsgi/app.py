"""The WSGI application: routing, the auth hook, the handler, and error rendering in one place.

:class:`Registry` composes the route table, the auth hook, the registry content (over the
injected storage) and the handlers. It knows neither how bytes are stored nor how users are
checked. It serves ``/v2/...`` as a root application and also when mounted with
``SCRIPT_NAME=/v2`` (werkzeug's ``DispatcherMiddleware``, or this package's middleware).
"""

from __future__ import annotations

import logging
from types import MappingProxyType
from typing import TYPE_CHECKING, Iterable, Mapping

from werkzeug.wrappers import Request

from . import logs
from .access import DELETE
from .auth.base import AllowAll, Auth
from .content import RegistryContent
from .errors import (
    InsufficientStorage,
    MethodNotAllowed,
    NameInvalid,
    NotFound,
    RegistryError,
    Unavailable,
)
from .events import EventHub
from .handlers.context import Context, base_url
from .metrics import ENDPOINT_KEY
from .references import parse_name
from .responses import Reply, error_reply
from .routes import REGISTRY_PREFIX, ROUTES, RouteTable, is_registry_path
from .usage import DEFAULT_TOUCH_INTERVAL, UsageRecords
from .wsgi import StartResponse, WSGIEnvironment
from .storage.base import InvalidKey, Storage, StorageFull, StorageUnavailable

if TYPE_CHECKING:
    from .proxy import Mirrors
    from .metrics import RegistryMetrics

__all__ = ["Registry"]

#: The query of a request without one (``request.args`` parses even an empty string).
_NO_QUERY: Mapping[str, str] = MappingProxyType({})

class _InternalError(RegistryError):
    code, status, message = "UNKNOWN", 500, "internal server error"


class Registry:
    """A container registry as a WSGI application.

    :param storage: where blobs, manifests and upload state live (see :mod:`~docker_registry_wsgi.storage`).
    :param auth: the auth hook (see :mod:`.auth`); default :class:`~.auth.AllowAll`.
    :param max_manifest_size: manifests larger than this are refused with 413.
    :param touch_interval: how often (seconds) a blob in use has its usage record rewritten;
        garbage collection's grace period must be longer (see docs/gc.rst).
    :param usage: the usage records themselves, instead of new ones over ``storage`` with
        ``touch_interval`` (to share them, or their clock, with a collector).
    :param mount_without_from: let ``POST ?mount=<digest>`` without ``from`` link a blob found
        anywhere in the registry. A digest then grants access to a blob in a repository the
        caller may not pull, so the default is to allow it only when there is no auth hook.
    :param delete_enabled: ``False`` refuses every delete of manifests, tags and blobs with 405
        ``UNSUPPORTED`` (distribution's ``storage.delete.enabled``), before the auth hook is
        asked, whatever it would grant. Cancelling an upload is not a delete and stays allowed.
    :param read_only: ``True`` refuses every request but ``GET`` and ``HEAD`` (pushes, uploads and
        their cancelling, deletes) with 405 ``UNSUPPORTED`` and an ``Allow`` header, as
        distribution's ``maintenance.readonly`` does, before the auth hook is asked.
    :param mirrors: namespaces mirrored from upstream registries (a pull-through cache, see
        :mod:`.proxy`); their repositories are read-only, filled from the upstream on a miss.
    :param events: where pushes, pulls, deletes and mounts are told once they succeeded (see
        :mod:`.events`); default a new :class:`~.events.EventHub`, as ``registry.events``.
    :param metrics: record requests, uploads in flight and auth refusals there (see
        :mod:`.metrics`); ``None``, the default, measures nothing.
    """

    def __init__(
        self,
        storage: Storage,
        auth: Auth | None = None,
        *,
        max_manifest_size: int = 4 * 1024 * 1024,
        mount_without_from: bool | None = None,
        touch_interval: float = DEFAULT_TOUCH_INTERVAL,
        usage: UsageRecords | None = None,
        delete_enabled: bool = True,
        read_only: bool = False,
        logger: logging.Logger | None = None,
        mirrors: Mirrors | None = None,
        events: EventHub | None = None,
        metrics: RegistryMetrics | None = None,
    ) -> None:
        self.storage = storage
        self.auth: Auth = auth if auth is not None else AllowAll()
        self.mount_without_from = (
            isinstance(self.auth, AllowAll) if mount_without_from is None else mount_without_from
        )
        self.content = RegistryContent(storage, max_manifest_size=max_manifest_size,
                                       usage=usage or UsageRecords(storage, touch_interval=touch_interval),
                                       mount_without_from=self.mount_without_from)
        self.routes = RouteTable(ROUTES)
        self.delete_enabled = delete_enabled
        self.read_only = read_only
        self.mirrors = mirrors
        self.logger = logger or logging.getLogger("docker_registry_wsgi")
        self.events = events if events is not None else EventHub()
        self._handlers = {
            (route.endpoint, http_method): method.handler
            for route in ROUTES
            for http_method, method in route.methods.items()
        }
        self.metrics = metrics
        if metrics is not None:
            metrics.instrument_handlers(self._handlers)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # The request's id in its log lines (see logs.py) and in the response's X-Request-ID.
        log, token = logs.enter(environ)
        if token is not None:  # else an outer layer (the server's) entered it and answers the id
            start_response = logs.with_request_id(start_response, log.request_id)
        try:
            if self.metrics is not None:
                return self.metrics.observe(self._respond, environ, start_response)
            return self._respond(environ, start_response)
        finally:
            logs.leave(token)

    def _respond(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request: its response, or its error rendered as the spec's JSON body."""
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except RegistryError as error:
            response = error_reply(error, self._location(error, request))
        except InvalidKey as exc:
            response = error_reply(NameInvalid({"key": str(exc)[:200]}))
        except StorageFull as exc:
            self.logger.error("storage full serving %s %s: %s", request.method, request.path, exc)
            response = error_reply(InsufficientStorage())
        except StorageUnavailable as exc:
            self.logger.error("storage unavailable serving %s %s: %s", request.method, request.path, exc)
            response = error_reply(Unavailable())
        except Exception:
            self.logger.exception("error serving %s %s", request.method, request.path)
            response = error_reply(_InternalError())
        return response(environ, start_response)

    def _location(self, error: RegistryError, request: Request) -> str | None:
        """The absolute URL of the endpoint an error links to (an upload's 416 names its session)."""
        if error.link is None:
            return None
        base, _ = self._split(request.environ)
        endpoint, values = error.link
        return base_url(request.environ, base) + self.routes.path(endpoint, **values)

    def dispatch(self, request: Request) -> Reply:
        """Route, authorize and handle one request; raises :class:`RegistryError` on failure."""
        base, path = self._split(request.environ)
        matched = self.routes.match(path)
        if matched is None:
            raise NotFound({"path": path[:200]})
        route, params = matched
        request.environ[ENDPOINT_KEY] = route.endpoint  # for metrics and any middleware
        method = route.methods.get(request.method)
        if method is None:
            raise MethodNotAllowed(
                {"method": request.method}, headers={"Allow": ", ".join(route.methods)}
            )
        mirror = None
        if "name" in params:
            parse_name(params["name"])
            if self.mirrors is not None:
                mirror = self.mirrors.check(params["name"], route, request.method)
        digest = params.get("digest") or _digest_reference(params.get("reference"))
        if digest is None and "digest=" in request.environ.get("QUERY_STRING", ""):
            digest = request.args.get("digest")  # an upload's completion
        logs.annotate(repository=params.get("name"), upload=params.get("upload_id"), digest=digest)
        if self.read_only and request.method not in _READS:
            # Before auth, as for deletes below: the answer is the same for every caller.
            raise MethodNotAllowed(
                {"method": request.method},
                message="this registry is read-only: pushes and deletes are refused",
                headers={"Allow": ", ".join(m for m in route.methods if m in _READS)},
            )
        if DELETE in method.actions and not self.delete_enabled:
            # Before auth: the answer is the same for every caller and every repository, so
            # asking for credentials first would only make a client log in to hear "no".
            raise MethodNotAllowed(
                {"method": request.method},
                message="deletes are disabled on this registry",
                headers={"Allow": ", ".join(m for m in route.methods if m != request.method)},
            )
        query = request.args if request.environ.get("QUERY_STRING") else _NO_QUERY  # parsed only if there is one
        identity = self.auth.authorize(request, method.access(params, query))
        ctx = Context(
            request=request,
            content=self.content if mirror is None else mirror.content(self.content, request),
            routes=self.routes,
            base_path=base,
            params=params,
            identity=identity,
            event_actions=self.events.wanted(),
        )
        reply = self._handlers[route.endpoint, request.method](ctx)
        if ctx.events:
            self.events.publish_request(request.environ, identity, ctx.events)
        return reply

    @staticmethod
    def _split(environ: Mapping[str, str]) -> tuple[str, str]:
        """``(path of /v2 as the client sees it, path below /v2)`` for root or mounted use."""
        script = environ.get("SCRIPT_NAME", "").rstrip("/")
        path = environ.get("PATH_INFO", "")
        if script.endswith(REGISTRY_PREFIX):
            return script, path or "/"
        if is_registry_path(path):
            return script + REGISTRY_PREFIX, path[len(REGISTRY_PREFIX) :] or "/"
        raise NotFound({"path": path[:200]}, message="the registry API lives below /v2/")


_READS = ("GET", "HEAD")


def _digest_reference(reference: str | None) -> str | None:
    """A manifest reference that is a digest (``sha256:...``), not a tag."""
    return reference if reference and ":" in reference else None
