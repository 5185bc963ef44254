"""``/v2/<name>/blobs/<digest>``: fetch (with ``Range``), check and delete blobs (spec "Pulling blobs")."""

from __future__ import annotations

from werkzeug.http import quote_etag
from werkzeug.wsgi import wrap_file

from ..digests import parse_digest
from ..errors import RangeNotSatisfiable
from ..events import BLOB_MEDIA_TYPE
from ..ranges import UnsatisfiableRange, if_range_holds, parse_range_header
from ..responses import Reply
from ..streams import CHUNK_SIZE, BoundedReader
from .context import Context, respond


def get_blob(ctx: Context) -> Reply:
    """200 with the blob (206 for a satisfiable ``Range``), or a 307 to the storage's own URL.

    The blob's digest is its strong ETag: ``If-None-Match`` naming it gets 304 (RFC 9110 13.1.2),
    and ``If-Range`` naming another tag gets the whole blob (13.1.5). A redirect ignores both, as
    section 13.2.1 requires of an answer that would not be 2xx. HEAD answers GET's headers.
    """
    digest = parse_digest(ctx.params["digest"])
    name = ctx.params["name"]
    blob = ctx.content.serve_blob(name, digest, touch=ctx.head, redirect=not ctx.head)
    size = blob.size
    etag = quote_etag(str(digest))
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    if not ctx.head:
        if blob.redirect_url is not None:
            ctx.record("pull", "blob", digest=str(digest), media_type=BLOB_MEDIA_TYPE, size=size)
            return respond(307, {**headers, "Location": blob.redirect_url, "Content-Length": "0"})
    if "HTTP_IF_NONE_MATCH" in ctx.request.environ and ctx.request.if_none_match.contains_weak(str(digest)):
        # Section 15.4.5: a 304 carries the validators and Cache-Control of the 200, no body.
        return respond(304, {k: headers[k] for k in ("Docker-Content-Digest", "ETag", "Cache-Control")})
    status, start, length = 200, 0, size
    range_header = ctx.request.headers.get("Range")
    if range_header is not None and if_range_holds(ctx.request.headers.get("If-Range"), etag):
        try:
            byte_range = parse_range_header(range_header, size)
        except UnsatisfiableRange:
            raise RangeNotSatisfiable(size=size) from None
        if byte_range is not None:
            status, start, length = 206, byte_range.start, byte_range.length
            headers["Content-Range"] = byte_range.content_range(size)
    headers["Content-Length"] = str(length)
    if ctx.head:
        return respond(status, headers, content_type="application/octet-stream")
    ctx.record("pull", "blob", digest=str(digest), media_type=BLOB_MEDIA_TYPE, size=size)
    reader = BoundedReader(blob.open(start), length)
    body = wrap_file(ctx.request.environ, reader, buffer_size=CHUNK_SIZE)  # type: ignore[arg-type]
    return respond(status, headers, body, "application/octet-stream")


def delete_blob(ctx: Context) -> Reply:
    """Unlink the blob from the repository (spec "Deleting Blobs"): 202."""
    digest = parse_digest(ctx.params["digest"])
    ctx.content.delete_blob(ctx.params["name"], digest)
    ctx.record("delete", "blob", digest=str(digest))
    return respond(202, {"Content-Length": "0"})
