"""The registry's error vocabulary: codes, statuses, messages, the headers each error must carry.

Raise a :class:`RegistryError` subclass from anywhere (parsers, content, handlers); the app
catches it and renders it in one place (:func:`~docker_registry_wsgi.responses.error_reply`),
as distribution keeps ``errcode`` apart from ``errcode.ServeJSON``. This module imports nothing
of HTTP, so the parsers that raise these errors do not either. The codes and statuses are the
ones of the OCI Distribution Spec, section "Error Codes".
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

from .ranges import format_upload_range

__all__ = [
    "RegistryError",
    "BlobUnknown",
    "BlobUploadInvalid",
    "BlobUploadUnknown",
    "BlobUploadBusy",
    "DigestInvalid",
    "ManifestBlobUnknown",
    "ManifestInvalid",
    "ManifestUnknown",
    "ManifestTooLarge",
    "NameInvalid",
    "NameUnknown",
    "SizeInvalid",
    "RangeInvalid",
    "TagInvalid",
    "Unauthorized",
    "Denied",
    "Unsupported",
    "PaginationNumberInvalid",
    "LengthRequired",
    "ContentCodingUnsupported",
    "TransferCodingUnsupported",
    "MethodNotAllowed",
    "NotFound",
    "RangeNotSatisfiable",
    "TooManyRequests",
    "UpstreamFailed",
    "InsufficientStorage",
    "Unavailable",
]

class RegistryError(Exception):
    """An error a client caused or must handle; renders as ``{"errors": [...]}``."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 400
    #: Default message of the class; an instance may carry its own.
    message: str = "unknown error"
    #: An endpoint and its parameters, e.g. ``("upload", {"name": ..., "upload_id": ...})``: the
    #: renderer sends its absolute URL as ``Location`` (only it knows where ``/v2`` is mounted).
    link: tuple[str, dict[str, str]] | None = None

    def __init__(
        self,
        detail: Any = None,
        *,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message, detail)
        self.detail = detail
        if message is not None:
            self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON document of the spec's error format."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            error["detail"] = self.detail
        return {"errors": [error]}

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" + (f" ({self.detail})" if self.detail else "")


class BlobUnknown(RegistryError):
    code, status, message = "BLOB_UNKNOWN", 404, "blob unknown to registry"


class BlobUploadInvalid(RegistryError):
    code, status, message = "BLOB_UPLOAD_INVALID", 400, "blob upload invalid"


class RangeInvalid(BlobUploadInvalid):
    """A chunk that does not start at the upload's current offset (416, spec "Pushing a blob in chunks").

    Given the session (``name``, ``upload_id`` and its current ``offset``), it carries what the
    client resumes from: ``Location``, ``Range`` and ``Docker-Upload-UUID``.
    """

    status, message = 416, "requested range not satisfiable"

    def __init__(self, detail: Any = None, *, name: str | None = None, upload_id: str | None = None,
                 offset: int | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        if name is not None and upload_id is not None and offset is not None:
            self.link = ("upload", {"name": name, "upload_id": upload_id})
            self.headers["Range"] = format_upload_range(offset)
            self.headers["Docker-Upload-UUID"] = upload_id


class BlobUploadUnknown(RegistryError):
    code, status, message = "BLOB_UPLOAD_UNKNOWN", 404, "blob upload unknown to registry"


class BlobUploadBusy(BlobUploadInvalid):
    """The session is being written by another request right now (409); nothing changed."""

    status, message = 409, "the upload is in use by another request"


class DigestInvalid(RegistryError):
    code, status, message = "DIGEST_INVALID", 400, "provided digest did not match uploaded content"


class ManifestBlobUnknown(RegistryError):
    code, status, message = (
        "MANIFEST_BLOB_UNKNOWN",
        400,
        "manifest references a manifest or blob unknown to registry",
    )


class ManifestInvalid(RegistryError):
    code, status, message = "MANIFEST_INVALID", 400, "manifest invalid"


class ManifestTooLarge(ManifestInvalid):
    status, message = 413, "manifest too large"


class ManifestUnknown(RegistryError):
    code, status, message = "MANIFEST_UNKNOWN", 404, "manifest unknown to registry"


class NameInvalid(RegistryError):
    code, status, message = "NAME_INVALID", 400, "invalid repository name"


class NameUnknown(RegistryError):
    code, status, message = "NAME_UNKNOWN", 404, "repository name not known to registry"


class TagInvalid(ManifestInvalid):
    message = "invalid tag"


class SizeInvalid(RegistryError):
    code, status, message = "SIZE_INVALID", 400, "provided length did not match content length"


class Unauthorized(RegistryError):
    """401 with a ``WWW-Authenticate`` challenge, given in ``challenge``."""

    code, status, message = "UNAUTHORIZED", 401, "authentication required"

    def __init__(self, detail: Any = None, *, challenge: str | None = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        if challenge:
            self.headers["WWW-Authenticate"] = challenge


class Denied(RegistryError):
    code, status, message = "DENIED", 403, "requested access to the resource is denied"


class Unsupported(RegistryError):
    code, status, message = "UNSUPPORTED", 400, "the operation is unsupported"


class PaginationNumberInvalid(Unsupported):
    """A listing's ``n`` that is not a count: docker-registry-http-api-v2.md "Listing Image Tags"
    and "Catalog", "On Failure: Invalid pagination number" (what distribution answers)."""

    code, status, message = "PAGINATION_NUMBER_INVALID", 400, "invalid number of results requested"


class LengthRequired(Unsupported):
    """A chunked body the WSGI server does not decode (no ``wsgi.input_terminated``): 411.

    The request is fine, this deployment cannot read it (RFC 9110 section 15.5.12); the client
    can send it again with ``Content-Length``. See docs/servers.rst.
    """

    status, message = 411, (
        "this WSGI server does not decode chunked request bodies: send the body with Content-Length"
    )


class ContentCodingUnsupported(Unsupported):
    """A content-coded body the registry would store coded (RFC 9110 section 15.5.16): 415."""

    status, message = 415, "content codings are not supported on this request: send it uncoded"


class TransferCodingUnsupported(Unsupported):
    """A transfer coding other than ``chunked`` (RFC 9112 section 6.1): 501."""

    status, message = 501, "unsupported transfer coding: only chunked is understood"


class MethodNotAllowed(Unsupported):
    status, message = 405, "method not allowed"


class RangeNotSatisfiable(Unsupported):
    """A download ``Range`` outside the blob (RFC 9110 section 15.5.17); with ``size``, its ``Content-Range``."""

    status, message = 416, "requested range not satisfiable"

    def __init__(self, detail: Any = None, *, size: int | None = None, **kw: Any) -> None:
        if detail is None and size is not None:
            detail = {"size": size}
        super().__init__(detail, **kw)
        if size is not None:
            self.headers["Content-Range"] = f"bytes */{size}"


class NotFound(Unsupported):
    """A path under ``/v2/`` that names no endpoint."""

    status, message = 404, "no such endpoint"


class TooManyRequests(RegistryError):
    code, status, message = "TOOMANYREQUESTS", 429, "too many requests"


class Unavailable(RegistryError):
    """The storage refuses writes for now (read-only); the client may retry (503, ``Retry-After``).

    ``UNAVAILABLE`` is distribution's code for this (its ``errcode.ErrorCodeUnavailable``).
    """

    code, status, message = "UNAVAILABLE", 503, "the registry's storage refuses writes; retry later"

    def __init__(self, detail: Any = None, **kw: Any) -> None:
        super().__init__(detail, **kw)
        self.headers.setdefault("Retry-After", "60")


class UpstreamFailed(Unavailable):
    """A pull-through cache's upstream failed (unreachable, an error, bytes that do not match): 502.

    The message names the upstream and what it did; nothing it sent was stored.
    """

    status, message = 502, "the upstream registry failed; retry later"


class InsufficientStorage(Unavailable):
    """The storage is full (507, RFC 4918); an upload session stays as it was and can be resumed."""

    status, message = 507, "the registry's storage is full; retry when space is freed"
