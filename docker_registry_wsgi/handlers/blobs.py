"""``/v2/<name>/blobs/<digest>``: fetch (with ``Range``), check and delete blobs (spec "Pulling blobs")."""

from __future__ import annotations

from ..responses import Reply
from werkzeug.wsgi import wrap_file

from ..digests import parse_digest
from ..errors import RangeNotSatisfiable
from ..ranges import UnsatisfiableRange, parse_range_header
from ..streams import CHUNK_SIZE, BoundedReader
from ..events import BLOB_MEDIA_TYPE
from .context import Context, respond


def get_blob(ctx: Context) -> Reply:
    """200 with the blob (206 for a satisfiable ``Range``), or a 307 to the storage's own URL."""
    digest = parse_digest(ctx.params["digest"])
    name = ctx.params["name"]
    blob = ctx.content.serve_blob(name, digest, touch=ctx.head, redirect=not ctx.head)
    size = blob.size
    headers = {
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    if not ctx.head:
        ctx.record("pull", "blob", digest=str(digest), media_type=BLOB_MEDIA_TYPE, size=size)
        if blob.redirect_url is not None:
            return respond(307, {**headers, "Location": blob.redirect_url, "Content-Length": "0"})
    status, start, length = 200, 0, size
    range_header = ctx.request.headers.get("Range")
    if range_header:
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
    reader = BoundedReader(blob.open(start), length)
    body = wrap_file(ctx.request.environ, reader, buffer_size=CHUNK_SIZE)  # type: ignore[arg-type]
    return respond(status, headers, body, "application/octet-stream")


def delete_blob(ctx: Context) -> Reply:
    """Unlink the blob from the repository (spec "Deleting Blobs"): 202."""
    digest = parse_digest(ctx.params["digest"])
    ctx.content.delete_blob(ctx.params["name"], digest)
    ctx.record("delete", "blob", digest=str(digest))
    return respond(202, {"Content-Length": "0"})
