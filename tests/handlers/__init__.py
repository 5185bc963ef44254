"""Helpers for driving the :class:`~docker_registry_wsgi.Registry` through WSGI in tests.

The fixtures live in ``conftest.py``; these are the plain helpers they and ``tests/test_app.py``
share: pushing blobs and manifests through the API with WebTest, checking the spec's error body,
and calling the app with a hand-built environ where WebTest cannot express the request (chunked
bodies with ``wsgi.input_terminated``, bodies shorter than their ``Content-Length``, raw paths).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import webtest
from werkzeug.wrappers import Request

from docker_registry_wsgi.auth.base import Access

__all__ = [
    "RecordingAuth",
    "next_link",
    "API_VERSION",
    "OCI_MANIFEST",
    "OCI_INDEX",
    "OCI_CONFIG",
    "OCI_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "sha256",
    "canonical",
    "descriptor",
    "assert_error",
    "assert_api_version",
    "Image",
    "RegistryClient",
    "RawResponse",
    "raw_call",
    "FailingInput",
]

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha256(data: bytes) -> str:
    """The OCI digest string of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: Any) -> bytes:
    """A JSON document as stable bytes (the registry must keep whatever bytes it gets)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    """An OCI descriptor of ``data``."""
    return {"mediaType": media_type, "digest": sha256(data), "size": len(data), **extra}


def assert_api_version(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> None:
    """Docker Registry HTTP API V2: every response carries the API version header."""
    pairs = headers.items() if hasattr(headers, "items") else headers
    values = [v for k, v in pairs if k.lower() == API_VERSION[0].lower()]
    assert values == [API_VERSION[1]], values


def assert_error(response: webtest.TestResponse, status: int, *codes: str) -> dict[str, Any]:
    """The response is an OCI error (oci-distribution-spec.md: Error Codes) of ``status``.

    For a body-carrying response the JSON must be ``{"errors": [{"code", "message", ...}]}``
    with one of ``codes``; returns the first error object (empty for ``HEAD``).
    """
    assert response.status_int == status, (response.status, response.body[:500])
    assert_api_version(response.headers)
    if response.request.method == "HEAD":
        assert response.body == b""
        return {}
    assert response.content_type == "application/json", response.content_type
    document = json.loads(response.body)
    assert isinstance(document["errors"], list) and document["errors"]
    error = document["errors"][0]
    assert set(error) <= {"code", "message", "detail"}
    assert error["code"].replace("_", "").isalpha() and error["code"].isupper()
    if codes:
        assert error["code"] in codes, error
    assert isinstance(error.get("message", ""), str)
    return error


def path_of(url: str) -> str:
    """The path and query of an absolute or relative URL (WebTest wants a path)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters appended (``?`` or ``&`` as needed)."""
    from urllib.parse import urlencode

    separator = "&" if "?" in url else "?"
    return url + separator + urlencode(params)


@dataclass
class Image:
    """An image pushed through the API: its manifest bytes, digest and blobs."""

    name: str
    digest: str
    body: bytes
    media_type: str
    blobs: dict[str, bytes] = field(default_factory=dict)
    response: webtest.TestResponse | None = None

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.body)


class RegistryClient:
    """Pushes content through the registry's HTTP API, as a client would, with WebTest."""

    def __init__(self, app: webtest.TestApp) -> None:
        self.app = app

    def push_blob(self, name: str, data: bytes) -> str:
        """Monolithic single POST (``?digest=``, end-4b); returns the digest."""
        digest = sha256(data)
        response = self.app.post(
            f"/v2/{name}/blobs/uploads/?digest={digest}",
            data,
            content_type="application/octet-stream",
            status=201,
        )
        assert response.headers["Docker-Content-Digest"] == digest
        return digest

    def start_upload(self, name: str, **params: str) -> webtest.TestResponse:
        """POST a new session (end-4a); 202 with a ``Location``."""
        url = with_query(f"/v2/{name}/blobs/uploads/", **params) if params else f"/v2/{name}/blobs/uploads/"
        return self.app.post(url, status=202)

    def put_manifest(
        self,
        name: str,
        reference: str,
        body: bytes,
        media_type: str | None,
        *,
        status: int | str = 201,
        headers: Mapping[str, str] | None = None,
    ) -> webtest.TestResponse:
        """PUT a manifest (end-7) with ``Content-Type: media_type`` (none if ``None``)."""
        all_headers = dict(headers or {})
        if media_type is not None:
            all_headers["Content-Type"] = media_type
        return self.app.put(f"/v2/{name}/manifests/{reference}", body, headers=all_headers,
                            status=status)

    def push_image(
        self,
        name: str,
        tag: str | None = "latest",
        *,
        layers: Iterable[bytes] = (b"layer-one",),
        config: bytes = b'{"architecture":"amd64","os":"linux"}',
        media_type: str = OCI_MANIFEST,
        subject: Mapping[str, Any] | None = None,
        artifact_type: str | None = None,
        config_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
        include_media_type: bool = True,
    ) -> Image:
        """Push a config, the layers and an image manifest referencing them (tagged if ``tag``)."""
        docker = media_type == DOCKER_MANIFEST
        layer_type = DOCKER_LAYER if docker else OCI_LAYER
        blobs = {self.push_blob(name, config): config}
        layer_descriptors = []
        for layer in layers:
            blobs[self.push_blob(name, layer)] = layer
            layer_descriptors.append(descriptor(layer_type, layer))
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "config": descriptor(config_type or (DOCKER_CONFIG if docker else OCI_CONFIG), config),
            "layers": layer_descriptors,
        }
        if include_media_type:
            document["mediaType"] = media_type
        image = self._push_document(name, tag, document, media_type, blobs, subject,
                                    artifact_type, annotations)
        assert image.response.headers["Docker-Content-Digest"] == image.digest
        return image

    def push_index(
        self,
        name: str,
        tag: str | None,
        children: Iterable[Image],
        *,
        media_type: str = OCI_INDEX,
        subject: Mapping[str, Any] | None = None,
        artifact_type: str | None = None,
        annotations: Mapping[str, str] | None = None,
    ) -> Image:
        """Push an image index / manifest list of already pushed manifests."""
        document: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [descriptor(child.media_type, child.body) for child in children],
        }
        return self._push_document(name, tag, document, media_type, {}, subject, artifact_type,
                                   annotations)

    def _push_document(
        self,
        name: str,
        tag: str | None,
        document: dict[str, Any],
        media_type: str,
        blobs: dict[str, bytes],
        subject: Mapping[str, Any] | None,
        artifact_type: str | None,
        annotations: Mapping[str, str] | None,
    ) -> Image:
        """Add the optional fields, PUT the manifest by ``tag`` (else by digest), return it."""
        if subject is not None:
            document["subject"] = dict(subject)
        if artifact_type is not None:
            document["artifactType"] = artifact_type
        if annotations:
            document["annotations"] = dict(annotations)
        body = canonical(document)
        digest = sha256(body)
        response = self.put_manifest(name, tag or digest, body, media_type)
        return Image(name, digest, body, media_type, blobs, response)


@dataclass
class RawResponse:
    """What a WSGI app answered to :func:`raw_call`."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_code(self) -> str:
        return self.json()["errors"][0]["code"]


class FailingInput:
    """A ``wsgi.input`` that gives ``good`` and then raises ``error``, as a server's input stream
    does on a malformed or truncated body (for :func:`raw_call`'s ``wsgi_input``)."""

    def __init__(self, good: bytes, error: BaseException) -> None:
        self._good = io.BytesIO(good)
        self._error = error

    def read(self, size: int = -1) -> bytes:
        data = self._good.read(size)
        if not data and size != 0:
            raise self._error
        return data


def raw_call(
    app: Any,
    method: str,
    path: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    *,
    query: str = "",
    script_name: str = "",
    content_length: int | None | str = "auto",
    chunked: bool = False,
    input_terminated: bool | None = None,
    wsgi_input: Any = None,
) -> RawResponse:
    """Call a WSGI app with an environ built by hand, the way a server would build it.

    ``path`` becomes ``PATH_INFO`` verbatim (already percent-decoded, as servers pass it).
    ``chunked`` sends the body with ``Transfer-Encoding: chunked`` and no ``CONTENT_LENGTH`` and
    sets ``wsgi.input_terminated`` as gunicorn does; ``content_length`` may disagree with the body.
    ``wsgi_input`` replaces the body's stream (one that fails as a server's does, say).
    """
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body) if wsgi_input is None else wsgi_input,
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if chunked:
        environ["HTTP_TRANSFER_ENCODING"] = "chunked"
        environ["wsgi.input_terminated"] = True if input_terminated is None else input_terminated
    elif content_length == "auto":
        environ["CONTENT_LENGTH"] = str(len(body))
    elif content_length is not None:
        environ["CONTENT_LENGTH"] = str(content_length)
    if input_terminated is not None and not chunked:
        environ["wsgi.input_terminated"] = input_terminated
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
        elif key == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value
        else:
            environ["HTTP_" + key] = value
    captured: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        captured["status"] = int(status.split(" ", 1)[0])
        captured["headers"] = list(response_headers)
        return lambda data: None

    result = app(environ, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return RawResponse(captured["status"], captured["headers"], data)


class RecordingAuth:
    """An auth hook that allows everything and records the access each request asked for."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, list[Access]]] = []

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        self.calls.append((request.method, request.path, list(needed)))
        return "recorded-user"

    def reset(self) -> None:
        self.calls.clear()

    @property
    def last(self) -> list[Access]:
        return self.calls[-1][2]


def next_link(response: webtest.TestResponse) -> str | None:
    """The target of a ``Link: <...>; rel="next"`` header, or ``None`` without one."""
    link = response.headers.get("Link")
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>;\s*rel="next"', link)
    assert match, link
    return match[1]

