"""A client for one upstream registry: pooled connections, Basic and token auth, redirects.

:class:`Upstream` speaks the pull side of the distribution API to one registry
(``https://registry-1.docker.io``, ``https://ghcr.io``, another instance of this registry):
manifests and blobs by ``HEAD`` and ``GET``, and tag listings. It authenticates as the upstream
asks in its ``WWW-Authenticate`` challenge (docker-token-auth-token.md, "How to authenticate"):
``Basic`` with the configured credentials, or ``Bearer``, fetching a token from the challenge's
``realm`` for the ``repository:<name>:pull`` scope (with the credentials as Basic, or
anonymously) and caching it until it expires. Redirects (Docker Hub sends blob ``GET``\\ s to a
CDN) are followed without the ``Authorization`` header when they leave the upstream's host.

Connections are kept per host and reused once a response has been read to its end; a blob is
read in bounded pieces by the caller (:class:`BlobStream`), never held whole.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Mapping
from urllib.parse import quote, urlencode, urljoin, urlsplit

from ..version import __version__
from ..auth.challenges import ChallengeError, parse_challenges
from ..auth.bearer import InvalidToken, bearer_token
from ..manifests import MANIFEST_TYPES

__all__ = ["Upstream", "UpstreamError", "BlobStream", "ManifestHead", "FetchedManifest", "DOCKER_HUB_HOSTS"]

#: Hosts that are Docker Hub: one-component names there live below ``library/``.
DOCKER_HUB_HOSTS = frozenset({"registry-1.docker.io", "index.docker.io", "docker.io"})
#: Docker Hub's API host (``docker.io`` itself only redirects browsers).
_DOCKER_HUB_API = "registry-1.docker.io"
MAX_REDIRECTS = 5
MAX_ERROR_BODY = 64 * 1024
MAX_TOKEN_BODY = 1 << 20
#: The token spec: a token without ``expires_in`` lives 60 s, and none lives less.
MIN_TOKEN_LIFETIME = 60
#: A token is renewed this long before it expires (clock skew, the request's own time).
TOKEN_MARGIN = 10.0
MAX_CACHED_TOKENS = 1024
_RETRYABLE_SEND = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError,
                   http.client.CannotSendRequest, http.client.BadStatusLine)
_ACCEPT = ", ".join(sorted(MANIFEST_TYPES))


class UpstreamError(Exception):
    """The upstream could not be reached, or answered with an error; ``str()`` says which.

    ``status`` is the upstream's HTTP status (``None`` when there was no answer), ``code`` the
    first OCI error code of its body, ``retry_after`` its ``Retry-After`` header.
    """

    def __init__(self, upstream: str, reason: str, *, status: int | None = None,
                 code: str | None = None, retry_after: str | None = None) -> None:
        super().__init__(f"{upstream}: {reason}")
        self.upstream = upstream
        self.reason = reason
        self.status = status
        self.code = code
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def denied(self) -> bool:
        return self.status in (401, 403)


@dataclass(frozen=True)
class ManifestHead:
    """What a ``HEAD`` of a manifest said: each may be missing from an upstream's answer."""

    digest: str | None
    media_type: str | None
    size: int | None


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest as the upstream served it: its bytes, ``Content-Type`` and digest header."""

    body: bytes
    media_type: str | None
    digest: str | None


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int

    @property
    def origin(self) -> str:
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{self.host}" + ("" if self.port == default else f":{self.port}")


def _target(url: str) -> tuple[_Target, str]:
    """``(scheme/host/port, path?query)`` of an absolute http(s) URL; ``ValueError`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(parts.scheme, parts.hostname, port), path


class _Pool:
    """Idle keep-alive connections per origin, handed to one request at a time."""

    def __init__(self, timeout: float, context: ssl.SSLContext, max_idle: int) -> None:
        self.timeout, self.context, self.max_idle = timeout, context, max_idle
        self._idle: dict[_Target, list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, target: _Target) -> tuple[http.client.HTTPConnection, bool]:
        """A connection to ``target`` and whether it was reused (it may have been closed since)."""
        with self._lock:
            idle = self._idle.get(target)
            if idle:
                return idle.pop(), True
        if target.scheme == "https":
            return http.client.HTTPSConnection(target.host, target.port, timeout=self.timeout,
                                               context=self.context), False
        return http.client.HTTPConnection(target.host, target.port, timeout=self.timeout), False

    def put(self, target: _Target, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(target, [])
            if len(idle) < self.max_idle:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            connections = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in connections:
            connection.close()


class _Exchange:
    """One response being read; its connection goes back to the pool once the body is read."""

    def __init__(self, pool: _Pool, target: _Target, connection: http.client.HTTPConnection,
                 response: http.client.HTTPResponse, upstream: str) -> None:
        self.pool, self.target, self.connection, self.response = pool, target, connection, response
        self.upstream = upstream
        self.status = response.status
        self._closed = False

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def read(self, size: int) -> bytes:
        try:
            return self.response.read(size)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise UpstreamError(self.upstream, f"reading the response failed: {_describe(exc)}") from None

    def read_all(self, limit: int) -> bytes:
        """The whole body, if at most ``limit`` bytes; :class:`UpstreamError` if longer."""
        parts, total = [], 0
        while chunk := self.read(min(1 << 20, limit + 1 - total)):
            parts.append(chunk)
            total += len(chunk)
            if total > limit:
                self.close()
                raise UpstreamError(self.upstream, f"response larger than {limit} bytes")
        return b"".join(parts)

    def close(self) -> None:
        """Return the connection to the pool if its response was read to the end, else close it."""
        if self._closed:
            return
        self._closed = True
        if self.response.isclosed() and not self.response.will_close:
            self.pool.put(self.target, self.connection)
        else:
            self.connection.close()

    def discard(self) -> None:
        """Read a small leftover body (an error, a redirect) so the connection can be reused."""
        try:
            self.response.read(MAX_ERROR_BODY)
        except (OSError, http.client.HTTPException):
            pass
        self.close()


class BlobStream:
    """A blob's bytes as the upstream sends them; ``length`` from ``Content-Length`` if given.

    :meth:`read` raises :class:`UpstreamError` if the connection fails, and when the body ends
    before ``length`` bytes.
    """

    def __init__(self, exchange: _Exchange, length: int | None) -> None:
        self._exchange = exchange
        self.length = length
        self.received = 0

    def read(self, size: int) -> bytes:
        data = self._exchange.read(size)
        self.received += len(data)
        if not data and self.length is not None and self.received < self.length:
            raise UpstreamError(self._exchange.upstream,
                                f"the blob ended after {self.received} of {self.length} bytes")
        return data

    def close(self) -> None:
        self._exchange.close()


@dataclass
class _Token:
    value: str
    expires: float


class Upstream:
    """The pull side of the distribution API against one registry at ``url``; thread-safe.

    ``username``/``password`` answer a Basic challenge, or are sent to the token realm of a
    Bearer one (without them, tokens are asked for anonymously, as for Docker Hub's public
    images). ``timeout`` bounds connecting and each read. A Docker Hub ``url`` maps
    one-component names below ``library/`` (:meth:`upstream_name`). ``ca_file`` adds trusted
    certificates (the system's are used in any case).
    """

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        ca_file: str | None = None,
        max_idle: int = 8,
        clock: Callable[[], float] = time.time,
    ) -> None:
        target, path = _target(url)
        if path.rstrip("/"):
            raise ValueError(f"upstream URL {url!r}: give the registry's origin only (no path)")
        if target.host in DOCKER_HUB_HOSTS:
            target = _Target(target.scheme, _DOCKER_HUB_API, target.port)
        self.target = target
        self.url = target.origin
        self.docker_hub = target.host in DOCKER_HUB_HOSTS
        self.username, self.password = username, password
        self.clock = clock
        context = ssl.create_default_context(cafile=ca_file)
        self._pool = _Pool(timeout, context, max_idle)
        self._lock = threading.Lock()
        self._tokens: OrderedDict[tuple[str, str, str], _Token] = OrderedDict()
        self._bearer: tuple[str, str] | None = None  # (realm, service) of the last Bearer challenge
        self._basic = False
        self.user_agent = f"docker-registry-wsgi/{__version__} (pull-through cache)"

    def upstream_name(self, name: str) -> str:
        """``name`` as the upstream knows it: Docker Hub's official images live below ``library/``."""
        if self.docker_hub and "/" not in name:
            return f"library/{name}"
        return name

    def close(self) -> None:
        self._pool.close()

    # -- the API -----------------------------------------------------------------------------

    def head_manifest(self, name: str, reference: str) -> ManifestHead:
        """``HEAD`` of a manifest by tag or digest; :class:`UpstreamError` (404 included) otherwise."""
        exchange = self._call("HEAD", _path(name, "manifests", reference), name, {"Accept": _ACCEPT})
        exchange.discard()
        length = exchange.header("Content-Length")
        return ManifestHead(
            exchange.header("Docker-Content-Digest"),
            _media_type(exchange.header("Content-Type")),
            int(length) if length and length.isdigit() else None,
        )

    def get_manifest(self, name: str, reference: str, limit: int) -> FetchedManifest:
        """A manifest's bytes (at most ``limit``), its media type and the upstream's digest header."""
        exchange = self._call("GET", _path(name, "manifests", reference), name, {"Accept": _ACCEPT})
        try:
            body = exchange.read_all(limit)
        finally:
            exchange.close()
        return FetchedManifest(body, _media_type(exchange.header("Content-Type")),
                               exchange.header("Docker-Content-Digest"))

    def head_blob(self, name: str, digest: str) -> int:
        """A blob's size from a ``HEAD``; :class:`UpstreamError` if it has none, or on failure."""
        exchange = self._call("HEAD", _path(name, "blobs", digest), name)
        exchange.discard()
        length = exchange.header("Content-Length")
        if not length or not length.isdigit():
            raise UpstreamError(self.url, f"HEAD of blob {digest} gave no Content-Length",
                                status=exchange.status)
        return int(length)

    def open_blob(self, name: str, digest: str) -> BlobStream:
        """Start a ``GET`` of a blob; the caller reads the stream in pieces and closes it."""
        exchange = self._call("GET", _path(name, "blobs", digest), name)
        length = exchange.header("Content-Length")
        return BlobStream(exchange, int(length) if length and length.isdigit() else None)

    def tags(self, name: str, n: int | None, last: str | None) -> tuple[list[str], bool]:
        """One page of the upstream's tag list, and whether it says more follow (``Link``)."""
        query = {k: v for k, v in (("n", str(n) if n is not None else None), ("last", last)) if v}
        path = _path(name, "tags", "list") + ("?" + urlencode(query) if query else "")
        exchange = self._call("GET", path, name, {"Accept": "application/json"})
        try:
            body = exchange.read_all(16 << 20)
        finally:
            exchange.close()
        try:
            tags = json.loads(body).get("tags") or []
        except (ValueError, AttributeError):
            raise UpstreamError(self.url, "the tag list is not JSON") from None
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise UpstreamError(self.url, "the tag list is malformed")
        return tags, 'rel="next"' in (exchange.header("Link") or "")

    # -- requests, authentication, redirects ---------------------------------------------------

    def _call(self, method: str, path: str, name: str,
              headers: Mapping[str, str] | None = None) -> _Exchange:
        """Send a request for repository ``name``, authenticating once if challenged.

        Any status but 2xx becomes :class:`UpstreamError` (the response read and released).
        """
        sent = dict(headers or {})
        for attempt in range(2):
            authorization = self._authorization(name)
            exchange = self._fetch(method, self.url + path, sent, authorization)
            if exchange.status == 401 and attempt == 0:
                challenge = exchange.header("WWW-Authenticate") or ""
                if self._answer(challenge, name):
                    exchange.discard()
                    continue
            if 200 <= exchange.status < 300:
                return exchange
            if exchange.status == 401:
                raise self._error(exchange, (
                    f"the upstream wants credentials for {name} and none are configured"
                    if self.username is None else
                    f"the upstream refused our credentials, or gave them no access to {name}"))
            raise self._error(exchange)
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exchange: _Exchange, reason: str | None = None) -> UpstreamError:
        """The error of a non-2xx answer: its status, and the code and message of its body."""
        code, message = None, None
        try:
            body = exchange.response.read(MAX_ERROR_BODY) if exchange.response.status != 304 else b""
            errors = json.loads(body).get("errors") if body else None
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                code = str(errors[0].get("code") or "") or None
                message = str(errors[0].get("message") or "") or None
        except (OSError, http.client.HTTPException, ValueError, AttributeError):
            pass
        exchange.close()
        said = f"HTTP {exchange.status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        reason = f"{reason} ({said})" if reason else said
        return UpstreamError(self.url, reason[:500], status=exchange.status, code=code,
                             retry_after=exchange.header("Retry-After"))

    def _fetch(self, method: str, url: str, headers: Mapping[str, str],
               authorization: str | None) -> _Exchange:
        """Send one request, following redirects (``Authorization`` only to the upstream's host)."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target, path = _target(url)
            except ValueError:
                raise UpstreamError(self.url, f"redirected to a URL that is not http(s): {url[:200]!r}") from None
            sent = {"User-Agent": self.user_agent, **headers}
            if authorization and target == self.target:
                sent["Authorization"] = authorization
            exchange = self._send(method, target, path, sent)
            location = exchange.header("Location")
            if exchange.status in (301, 302, 303, 307, 308) and location:
                exchange.discard()
                url = urljoin(url, location)
                continue
            return exchange
        raise UpstreamError(self.url, f"more than {MAX_REDIRECTS} redirects")

    def _send(self, method: str, target: _Target, path: str, headers: Mapping[str, str]) -> _Exchange:
        """One request on a pooled connection; a reused one that the peer closed is retried fresh."""
        for _ in range(2):
            connection, reused = self._pool.get(target)
            try:
                connection.request(method, path, headers=dict(headers))
                response = connection.getresponse()
            except _RETRYABLE_SEND:
                connection.close()
                if reused:
                    continue
                raise UpstreamError(self.url, f"{target.origin} closed the connection") from None
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                raise UpstreamError(self.url, f"cannot reach {target.origin}: {_describe(exc)}") from None
            return _Exchange(self._pool, target, connection, response, self.url)
        raise UpstreamError(self.url, f"{target.origin} closed the connection")

    def _authorization(self, name: str) -> str | None:
        """The ``Authorization`` to send for ``name``, from what earlier challenges asked for."""
        with self._lock:
            bearer, basic = self._bearer, self._basic
        if bearer is not None:
            return "Bearer " + self._token(bearer[0], bearer[1], _pull_scope(name))
        if basic and self.username is not None:
            return _basic(self.username, self.password or "")
        return None

    def _answer(self, header: str, name: str) -> bool:
        """Remember how to answer the challenge ``header``; whether a retry can succeed."""
        try:
            challenges = parse_challenges(header)
        except ChallengeError:
            raise UpstreamError(self.url, f"unreadable WWW-Authenticate: {header[:200]!r}") from None
        for challenge in challenges:
            scheme = challenge.scheme.lower()
            if scheme == "bearer" and challenge.params.get("realm"):
                realm, service = challenge.params["realm"], challenge.params.get("service", "")
                with self._lock:
                    self._bearer = (realm, service)
                    # A token we sent was refused: forget it rather than send it again.
                    self._tokens.pop((realm, service, _pull_scope(name)), None)
                return True
            if scheme == "basic" and self.username is not None:
                with self._lock:
                    self._basic = True
                return True
        return False

    def _token(self, realm: str, service: str, scope: str) -> str:
        """A cached or fresh bearer token for ``scope`` (docker-token-auth-token.md)."""
        key = (realm, service, scope)
        now = self.clock()
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.expires > now:
                self._tokens.move_to_end(key)
                return token.value
        query = urlencode({k: v for k, v in (("service", service), ("scope", scope)) if v})
        url = realm + ("&" if "?" in realm else "?") + query
        headers = {"Accept": "application/json"}
        if self.username is not None:
            headers["Authorization"] = _basic(self.username, self.password or "")
        exchange = self._fetch_token(url, headers)
        try:
            if exchange.status != 200:
                raise UpstreamError(
                    self.url, f"the token endpoint {realm} answered HTTP {exchange.status}"
                    + (" (our credentials were refused)" if exchange.status == 401 else ""),
                    status=401 if exchange.status in (401, 403) else exchange.status)
            body = exchange.read_all(MAX_TOKEN_BODY)
        finally:
            exchange.discard()
        value, lifetime = _parse_token_response(body, self.url)
        issued = self.clock()
        with self._lock:
            self._tokens[key] = _Token(value, issued + max(lifetime, MIN_TOKEN_LIFETIME) - TOKEN_MARGIN)
            while len(self._tokens) > MAX_CACHED_TOKENS:
                self._tokens.popitem(last=False)
        return value

    def _fetch_token(self, url: str, headers: Mapping[str, str]) -> _Exchange:
        """``GET`` the token URL; credentials go to the realm named by the challenge, as docker does."""
        for _ in range(MAX_REDIRECTS + 1):
            try:
                target, path = _target(url)
            except ValueError:
                raise UpstreamError(self.url, f"the token realm {url[:200]!r} is not an http(s) URL") from None
            exchange = self._send("GET", target, path, {"User-Agent": self.user_agent, **headers})
            location = exchange.header("Location")
            if exchange.status in (301, 302, 303, 307, 308) and location:
                exchange.discard()
                url = urljoin(url, location)
                headers = {k: v for k, v in headers.items() if k != "Authorization"}
                continue
            return exchange
        raise UpstreamError(self.url, f"more than {MAX_REDIRECTS} redirects from the token realm")


def _parse_token_response(body: bytes, upstream: str) -> tuple[str, int]:
    """The token and its lifetime from a token endpoint's JSON (``token`` or ``access_token``)."""
    try:
        document = json.loads(body)
    except ValueError:
        raise UpstreamError(upstream, "the token endpoint did not answer JSON") from None
    if not isinstance(document, dict):
        raise UpstreamError(upstream, "the token endpoint's answer is not a JSON object")
    value = document.get("token") or document.get("access_token")
    if not isinstance(value, str):
        raise UpstreamError(upstream, "the token endpoint's answer holds no token")
    try:
        checked = bearer_token("Bearer " + value)
    except InvalidToken:
        checked = None
    if checked is None:
        raise UpstreamError(upstream, "the token endpoint's token is malformed")
    lifetime = document.get("expires_in")
    if not isinstance(lifetime, int) or isinstance(lifetime, bool) or lifetime <= 0:
        lifetime = MIN_TOKEN_LIFETIME
    return checked, lifetime


def _pull_scope(name: str) -> str:
    return f"repository:{name}:pull"


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _path(name: str, kind: str, reference: str) -> str:
    return f"/v2/{quote(name, safe='/')}/{kind}/{quote(reference, safe=':')}"


def _media_type(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip().lower() or None if content_type else None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__
