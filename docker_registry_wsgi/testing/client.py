"""A registry client for tests: push and pull through any WSGI app in-process, no server needed.

:class:`RegistryClient` speaks the OCI Distribution Spec v1.1 to a WSGI app: the bare
:class:`~docker_registry_wsgi.Registry`, or a Flask, Pyramid or Django site with the registry
mounted in it. It builds each request's environ with :mod:`werkzeug.test` (werkzeug is already
a dependency of the package, so the client needs nothing more) and calls the app directly::

    from docker_registry_wsgi.testing import RegistryClient, assert_oci_error

    client = RegistryClient(create_app(), auth=("alice", "secret"))
    image = client.push_image("alice/demo", "v1", layers=[b"layer one"])
    assert client.tags("alice/demo") == ["v1"]
    assert client.pull_image("alice/demo", "v1").digest == image.digest

    anonymous = RegistryClient(create_app())
    assert_oci_error(anonymous.get("alice/demo/tags/list"), "UNAUTHORIZED", 401)

Every response iterable is closed, downloads read only in part included, as a server must
(PEP 3333). The client also hands the app a ``wsgi.file_wrapper`` that records each file the
app wraps (the registry serves blobs through it) and, once the response is closed, raises
:class:`UnclosedResponse` for any that was not: a site middleware that iterates the registry's
response without forwarding ``close()`` leaks an open blob reader per download, and this is
where a test sees it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Literal, Mapping, Sequence, Union
from urllib.parse import urlencode, urlsplit

from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wsgi import FileWrapper

if TYPE_CHECKING:
    from ..wsgi import WSGIApp

__all__ = [
    "RegistryClient",
    "Response",
    "StreamedResponse",
    "Image",
    "PulledImage",
    "UnexpectedStatus",
    "UnclosedResponse",
    "assert_oci_error",
    "sha256_digest",
    "OCI_MANIFEST",
    "OCI_INDEX",
    "OCI_CONFIG",
    "OCI_LAYER",
    "MANIFEST_ACCEPT",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: An uncompressed tar layer: its digest is also its ``diff_id`` in the config.
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
#: The ``Accept`` header of manifest pulls: OCI and Docker manifests and indexes.
MANIFEST_ACCEPT = ", ".join([
    OCI_INDEX,
    OCI_MANIFEST,
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
_INDEX_TYPES = frozenset({OCI_INDEX, "application/vnd.docker.distribution.manifest.list.v2+json"})

#: Credentials: ``(username, password)`` for Basic, or a whole ``Authorization`` header value.
Auth = Union[tuple[str, str], str, None]
_DEFAULT: Any = object()  # "the client's own credentials" for a request's ``auth``


def sha256_digest(data: bytes) -> str:
    """The OCI digest ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


class UnexpectedStatus(AssertionError):
    """A registry call got a status it did not expect; ``response`` is what the app answered."""

    def __init__(self, response: Response, expected: Sequence[int]) -> None:
        self.response = response
        super().__init__(f"{response.method} {response.path}: {response.status}, expected "
                         f"{' or '.join(map(str, expected))}: {response.body[:500]!r}")


class UnclosedResponse(AssertionError):
    """The app left a file it wrapped with ``wsgi.file_wrapper`` open after its response was closed."""


class _TrackedFileWrapper(FileWrapper):
    """werkzeug's file wrapper that remembers whether ``close()`` reached it."""

    def __init__(self, file: Any, buffer_size: int = 8192) -> None:
        super().__init__(file, buffer_size)
        self.closed = False

    def close(self) -> None:
        self.closed = True
        super().close()


class _Exchange:
    """One call of the app: its environ, what ``start_response`` got and the files it wrapped."""

    def __init__(self, method: str, path: str) -> None:
        self.method = method
        self.path = path
        self.status: int | None = None
        self.headers: list[tuple[str, str]] = []
        self.written: list[bytes] = []
        self.wrapped: list[_TrackedFileWrapper] = []

    def file_wrapper(self, file: Any, buffer_size: int = 8192) -> _TrackedFileWrapper:
        wrapper = _TrackedFileWrapper(file, buffer_size)
        self.wrapped.append(wrapper)
        return wrapper

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        if self.status is not None and exc_info is None:
            raise AssertionError(f"{self.method} {self.path}: start_response called twice without exc_info")
        self.status = int(status.split(" ", 1)[0])
        self.headers = list(headers)
        return self.written.append

    def check_closed(self) -> None:
        left_open = sum(not wrapper.closed for wrapper in self.wrapped)
        if left_open:
            raise UnclosedResponse(
                f"{self.method} {self.path}: {left_open} of {len(self.wrapped)} file(s) the app "
                "wrapped with wsgi.file_wrapper were not closed when the response was closed "
                "(a middleware that does not forward close() to the registry's response?)")


@dataclass
class Response:
    """A whole response: ``status``, ``headers`` (case-insensitive) and ``body``."""

    method: str
    path: str
    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        """The media type of ``Content-Type`` without parameters ("" when absent)."""
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip()


class StreamedResponse:
    """A response read as the client chooses: :meth:`read` some, then :meth:`close` (or ``with``).

    Closing it closes the app's iterable and then checks that every file the app wrapped was
    closed (raising :class:`UnclosedResponse` if not), however much of the body was read.
    """

    def __init__(self, exchange: _Exchange, iterable: Iterable[bytes]) -> None:
        self._exchange = exchange
        self._iterable = iterable
        self._iterator: Iterator[bytes] = iter(iterable)
        self._buffer = b"".join(exchange.written)
        self.closed = False
        try:
            # The first chunk, so that a generator app has called start_response (as falcon does).
            self._buffer += next(self._iterator)
        except StopIteration:
            pass
        except BaseException:
            self.close()
            raise
        if exchange.status is None:
            self.close()
            raise AssertionError(f"{exchange.method} {exchange.path}: the app never called start_response")
        self.method, self.path, self.status = exchange.method, exchange.path, exchange.status
        self.headers = Headers(exchange.headers)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left if ``size`` < 0)."""
        if self.closed:
            raise ValueError("read from a closed response")
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._iterator, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            data, self._buffer = self._buffer, b""
        else:
            data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    @property
    def files_wrapped(self) -> int:
        """How many files the app handed to ``wsgi.file_wrapper`` (the registry: one per blob GET)."""
        return len(self._exchange.wrapped)

    def close(self) -> None:
        """Close the app's iterable (PEP 3333), then check the files it wrapped were closed."""
        if self.closed:
            return
        self.closed = True
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()
        self._exchange.check_closed()

    def __enter__(self) -> StreamedResponse:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()


@dataclass
class Image:
    """A manifest pushed by :meth:`RegistryClient.push_image` or :meth:`~RegistryClient.push_index`.

    ``blobs`` maps the digest of each blob pushed for it (config, layers) to its bytes;
    ``platform`` is ``{"os": ..., "architecture": ...}`` for an image.
    """

    name: str
    digest: str
    media_type: str
    body: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)
    platform: dict[str, str] | None = None

    @property
    def document(self) -> Any:
        """The manifest parsed."""
        return json.loads(self.body)

    def descriptor(self) -> dict[str, Any]:
        """The OCI descriptor of this manifest, for an index (with its platform)."""
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)}
        if self.platform:
            out["platform"] = dict(self.platform)
        return out


@dataclass
class PulledImage:
    """What :meth:`RegistryClient.pull_image` fetched, every digest verified.

    ``blobs`` holds the config and layers of an image; ``children`` the images of an index.
    """

    digest: str
    media_type: str
    body: bytes
    blobs: dict[str, bytes] = field(default_factory=dict)
    children: list[PulledImage] = field(default_factory=list)

    @property
    def document(self) -> Any:
        """The manifest parsed."""
        return json.loads(self.body)


def assert_oci_error(response: Response | StreamedResponse, code: str, status: int) -> dict[str, Any]:
    """Assert ``response`` is the OCI error ``code`` with ``status`` (spec "Error Codes").

    The body must be ``{"errors": [{"code", "message", "detail"?}, ...]}`` with ``code`` among
    the errors; a ``HEAD`` response must have an empty body. Returns that error object (``{}``
    for ``HEAD``).
    """
    body = response.body if isinstance(response, Response) else response.read()
    assert response.status == status, (
        f"{response.method} {response.path}: status {response.status}, expected {status}: {body[:500]!r}")
    if response.method == "HEAD":
        assert body == b"", f"HEAD {response.path} answered a body: {body[:200]!r}"
        return {}
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    assert media_type == "application/json", f"{response.path}: Content-Type {media_type!r}: {body[:200]!r}"
    document = json.loads(body)
    errors = document.get("errors") if isinstance(document, dict) else None
    assert isinstance(errors, list) and errors, f"{response.path}: no errors list in {document!r}"
    for error in errors:
        assert isinstance(error, dict) and isinstance(error.get("code"), str), error
        assert set(error) <= {"code", "message", "detail"}, f"unknown error fields in {error!r}"
        assert isinstance(error.get("message", ""), str), error
    found = [error for error in errors if error["code"] == code]
    assert found, f"{response.path}: error codes {[e['code'] for e in errors]}, expected {code}"
    first: dict[str, Any] = found[0]
    return first


class RegistryClient:
    """Drive a registry mounted in any WSGI ``app`` under ``base`` (``"/v2/"``, or ``"/site/v2/"``).

    ``auth`` is sent with every request: ``(username, password)`` for Basic, or a whole
    ``Authorization`` value (``"Bearer <token>"``); each call may pass its own ``auth``.
    ``headers`` are added to every request. Registry operations raise :class:`UnexpectedStatus`
    (with the response) on a status the spec does not name; :meth:`request` and the verb
    methods return any response for the test to judge.
    """

    def __init__(self, app: WSGIApp, base: str = "/v2/", *, auth: Auth = None,
                 headers: Mapping[str, str] | None = None) -> None:
        if not base.startswith("/"):
            raise ValueError(f"base must be a path starting with '/', not {base!r}")
        self.app = app
        self.base = base if base.endswith("/") else base + "/"
        self.auth = auth
        self.headers = dict(headers or {})

    # -- HTTP ------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        """``path`` below :attr:`base`, or as given when it starts with ``/`` or a scheme."""
        if path.startswith("/"):
            return path
        if "://" in path:
            parts = urlsplit(path)
            return parts.path + (f"?{parts.query}" if parts.query else "")
        return self.base + path

    def _environ(self, method: str, path: str, body: bytes, headers: Mapping[str, str] | None,
                 auth: Auth, chunked: bool) -> dict[str, Any]:
        all_headers = Headers(self.headers)
        for key, value in (headers or {}).items():
            all_headers[key] = value
        credentials = self.auth if auth is _DEFAULT else auth
        if isinstance(credentials, tuple):
            token = base64.b64encode(f"{credentials[0]}:{credentials[1]}".encode()).decode()
            all_headers.setdefault("Authorization", f"Basic {token}")
        elif credentials:
            all_headers.setdefault("Authorization", credentials)
        environ = EnvironBuilder(path=path, method=method, headers=all_headers,
                                 data=body if body or method in ("PUT", "PATCH", "POST") else None,
                                 ).get_environ()
        if chunked:
            # As a server hands on a body sent with Transfer-Encoding: chunked (gunicorn's way).
            environ.pop("CONTENT_LENGTH", None)
            environ["HTTP_TRANSFER_ENCODING"] = "chunked"
            environ["wsgi.input_terminated"] = True
        return environ

    def stream(self, method: str, path: str, *, body: bytes = b"",
               headers: Mapping[str, str] | None = None, auth: Auth = _DEFAULT,
               chunked: bool = False) -> StreamedResponse:
        """Call the app and return the response unread: use it in a ``with`` block."""
        target = self.url(path)
        exchange = _Exchange(method, target)
        environ = self._environ(method, target, body, headers, auth, chunked)
        environ["wsgi.file_wrapper"] = exchange.file_wrapper
        return StreamedResponse(exchange, self.app(environ, exchange.start_response))

    def request(self, method: str, path: str, *, body: bytes = b"",
                headers: Mapping[str, str] | None = None, auth: Auth = _DEFAULT,
                chunked: bool = False, expect: int | Sequence[int] | None = None) -> Response:
        """Call the app, read the whole body and close the response.

        ``path`` is below :attr:`base` unless it starts with ``/`` (a ``Location`` may be given
        as is). ``chunked`` sends the body as ``Transfer-Encoding: chunked`` (no length).
        With ``expect``, another status raises :class:`UnexpectedStatus`.
        """
        with self.stream(method, path, body=body, headers=headers, auth=auth, chunked=chunked) as streamed:
            response = Response(method, streamed.path, streamed.status, streamed.headers, streamed.read())
        if expect is not None:
            expected = (expect,) if isinstance(expect, int) else tuple(expect)
            if response.status not in expected:
                raise UnexpectedStatus(response, expected)
        return response

    def get(self, path: str, **options: Any) -> Response:
        """``request("GET", path, ...)``."""
        return self.request("GET", path, **options)

    def head(self, path: str, **options: Any) -> Response:
        """``request("HEAD", path, ...)``."""
        return self.request("HEAD", path, **options)

    def post(self, path: str, **options: Any) -> Response:
        """``request("POST", path, ...)``."""
        return self.request("POST", path, **options)

    def put(self, path: str, **options: Any) -> Response:
        """``request("PUT", path, ...)``."""
        return self.request("PUT", path, **options)

    def patch(self, path: str, **options: Any) -> Response:
        """``request("PATCH", path, ...)``."""
        return self.request("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> Response:
        """``request("DELETE", path, ...)``."""
        return self.request("DELETE", path, **options)

    # -- the registry API ----------------------------------------------------------------------

    def ping(self, **options: Any) -> Response:
        """``GET /v2/`` (spec end-1): 200 when the credentials are good."""
        return self.get("", expect=200, **options)

    def push_blob(self, name: str, data: bytes, *,
                  mode: Literal["monolithic", "single-post", "chunked", "streamed"] = "monolithic",
                  chunk_size: int = 1024 * 1024, **options: Any) -> str:
        """Push ``data`` to repository ``name`` and return its digest (spec "Pushing blobs").

        ``mode``: ``"monolithic"`` POSTs a session and PUTs the body with ``?digest=``;
        ``"single-post"`` POSTs the body with ``?digest=``; ``"chunked"`` PATCHes ``chunk_size``
        pieces with ``Content-Range`` (at least the ``OCI-Chunk-Min-Length`` the registry asks
        for, except the last) then PUTs; ``"streamed"`` PATCHes the whole body with
        ``Transfer-Encoding: chunked`` then PUTs. ``options`` go to each request (``auth``).
        """
        digest = sha256_digest(data)
        if mode == "single-post":
            response = self.post(f"{name}/blobs/uploads/?digest={digest}", body=data,
                                 headers={"Content-Type": "application/octet-stream"}, expect=201, **options)
        else:
            started = self.post(f"{name}/blobs/uploads/", expect=202, **options)
            location = started.headers["Location"]
            if mode == "chunked":
                size = max(chunk_size, int(started.headers.get("OCI-Chunk-Min-Length", 0)), 1)
                for start in range(0, len(data), size):
                    piece = data[start:start + size]
                    patched = self.patch(location, body=piece, expect=202, headers={
                        "Content-Type": "application/octet-stream",
                        "Content-Range": f"{start}-{start + len(piece) - 1}"}, **options)
                    location = patched.headers["Location"]
                data = b""
            elif mode == "streamed":
                patched = self.patch(location, body=data, chunked=True, expect=202,
                                     headers={"Content-Type": "application/octet-stream"}, **options)
                location, data = patched.headers["Location"], b""
            elif mode != "monolithic":
                raise ValueError(f"unknown upload mode {mode!r}")
            separator = "&" if "?" in location else "?"
            response = self.put(f"{self.url(location)}{separator}{urlencode({'digest': digest})}", body=data,
                                headers={"Content-Type": "application/octet-stream"}, expect=201, **options)
        if response.headers.get("Docker-Content-Digest") != digest:
            raise AssertionError(f"pushed {digest}, registry answered {response.headers.get('Docker-Content-Digest')}")
        return digest

    def mount_blob(self, name: str, digest: str, source: str | None, **options: Any) -> bool:
        """Mount ``digest`` from repository ``source`` into ``name`` (spec "Mounting a blob").

        True when mounted (201); False when the registry opened an upload session instead
        (202), which this cancels.
        """
        query = urlencode({"mount": digest, **({"from": source} if source is not None else {})})
        response = self.post(f"{name}/blobs/uploads/?{query}", expect=(201, 202), **options)
        if response.status == 202:
            self.delete(response.headers["Location"], expect=204, **options)
            return False
        return True

    def blob_exists(self, name: str, digest: str, **options: Any) -> bool:
        """``HEAD`` the blob: True on 200, False on 404."""
        return self.head(f"{name}/blobs/{digest}", expect=(200, 404), **options).status == 200

    def pull_blob(self, name: str, digest: str, *, byte_range: tuple[int, int] | None = None,
                  **options: Any) -> bytes:
        """The blob's bytes, checked against ``digest`` (or bytes ``start..end`` inclusive, 206)."""
        headers = dict(options.pop("headers", None) or {})
        if byte_range is not None:
            headers["Range"] = f"bytes={byte_range[0]}-{byte_range[1]}"
        response = self.get(f"{name}/blobs/{digest}", headers=headers,
                            expect=200 if byte_range is None else 206, **options)
        if byte_range is None and sha256_digest(response.body) != digest:
            raise AssertionError(f"blob {digest} of {name} came back as {sha256_digest(response.body)}")
        return response.body

    def open_blob(self, name: str, digest: str, **options: Any) -> StreamedResponse:
        """The blob's download unread (``with client.open_blob(...) as r: r.read(10)``)."""
        return self.stream("GET", f"{name}/blobs/{digest}", **options)

    def delete_blob(self, name: str, digest: str, **options: Any) -> None:
        """``DELETE`` the blob (spec end-10): 202."""
        self.delete(f"{name}/blobs/{digest}", expect=202, **options)

    def push_manifest(self, name: str, reference: str, body: bytes, media_type: str,
                      **options: Any) -> str:
        """PUT a manifest by tag or digest (spec end-7): 201; returns its digest."""
        response = self.put(f"{name}/manifests/{reference}", body=body,
                            headers={"Content-Type": media_type}, expect=201, **options)
        digest = sha256_digest(body)
        if response.headers.get("Docker-Content-Digest") != digest:
            raise AssertionError(f"pushed {digest}, registry answered {response.headers.get('Docker-Content-Digest')}")
        return digest

    def pull_manifest(self, name: str, reference: str, **options: Any) -> Response:
        """GET a manifest with every manifest type accepted; its digest is checked."""
        headers = {"Accept": MANIFEST_ACCEPT, **(options.pop("headers", None) or {})}
        response = self.get(f"{name}/manifests/{reference}", headers=headers, expect=200, **options)
        digest = sha256_digest(response.body)
        if response.headers.get("Docker-Content-Digest") != digest or (
                reference.startswith("sha256:") and reference != digest):
            raise AssertionError(f"manifest {name}:{reference} has digest {digest}, registry said "
                                 f"{response.headers.get('Docker-Content-Digest')}")
        return response

    def delete_manifest(self, name: str, reference: str, **options: Any) -> None:
        """DELETE a manifest by digest, or a tag (spec end-9): 202."""
        self.delete(f"{name}/manifests/{reference}", expect=202, **options)

    def push_image(self, name: str, tag: str | None = "latest", *, layers: Iterable[bytes] = (b"layer",),
                   platform: tuple[str, str] = ("linux", "amd64"), config: bytes | None = None,
                   annotations: Mapping[str, str] | None = None, **options: Any) -> Image:
        """Push a config, the ``layers`` (tar) and an image manifest, tagged ``tag`` (else by digest).

        The default config is the OCI image config of ``platform`` (os, architecture) with the
        layers' ``diff_ids``; blob uploads use ``push_blob``'s options (``mode``, ``chunk_size``).
        """
        blob_options = {key: options.pop(key) for key in ("mode", "chunk_size") if key in options}
        layer_list = list(layers)
        os_name, architecture = platform
        if config is None:
            config = _canonical({"architecture": architecture, "os": os_name,
                                 "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b) for b in layer_list]}})
        blobs = {self.push_blob(name, config, **blob_options, **options): config}
        for layer in layer_list:
            blobs[self.push_blob(name, layer, **blob_options, **options)] = layer
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": sha256_digest(config), "size": len(config)},
            "layers": [{"mediaType": OCI_LAYER, "digest": sha256_digest(b), "size": len(b)} for b in layer_list],
        }
        if annotations:
            document["annotations"] = dict(annotations)
        body = _canonical(document)
        digest = self.push_manifest(name, tag or sha256_digest(body), body, OCI_MANIFEST, **options)
        return Image(name, digest, OCI_MANIFEST, body, blobs, {"os": os_name, "architecture": architecture})

    def push_index(self, name: str, tag: str | None, images: Sequence[Image], **options: Any) -> Image:
        """Push an image index of already pushed ``images`` (with their platforms), tagged ``tag``."""
        body = _canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                           "manifests": [image.descriptor() for image in images]})
        digest = self.push_manifest(name, tag or sha256_digest(body), body, OCI_INDEX, **options)
        return Image(name, digest, OCI_INDEX, body)

    def pull_image(self, name: str, reference: str, **options: Any) -> PulledImage:
        """Pull a manifest and all it references (an index's images, configs, layers), verified."""
        response = self.pull_manifest(name, reference, **options)
        pulled = PulledImage(sha256_digest(response.body), response.content_type, response.body)
        document = response.json()
        if pulled.media_type in _INDEX_TYPES:
            for child in document.get("manifests", []):
                pulled.children.append(self.pull_image(name, child["digest"], **options))
            return pulled
        for item in [document["config"], *document.get("layers", [])]:
            data = self.pull_blob(name, item["digest"], **options)
            if len(data) != item["size"]:
                raise AssertionError(f"blob {item['digest']}: {len(data)} bytes, descriptor says {item['size']}")
            pulled.blobs[item["digest"]] = data
        return pulled

    def _pages(self, path: str, key: str, page_size: int | None, **options: Any) -> list[str]:
        """Follow ``Link: <...>; rel="next"`` (spec "Listing tags") and join the pages' lists."""
        target = path + (f"?n={page_size}" if page_size is not None else "")
        found: list[str] = []
        while True:
            response = self.get(target, expect=200, **options)
            found.extend(response.json().get(key) or [])
            link = response.headers.get("Link")
            if link is None:
                return found
            match = re.match(r'\s*<([^>]+)>\s*;\s*rel="?next"?', link)
            if match is None:
                raise AssertionError(f"{path}: unparsable Link header {link!r}")
            target = self.url(match[1])

    def tags(self, name: str, *, page_size: int | None = None, **options: Any) -> list[str]:
        """Every tag of ``name`` (spec end-8a/8b), following pagination."""
        return self._pages(f"{name}/tags/list", "tags", page_size, **options)

    def catalog(self, *, page_size: int | None = None, **options: Any) -> list[str]:
        """Every repository name from ``/v2/_catalog``, following pagination."""
        return self._pages("_catalog", "repositories", page_size, **options)
