"""``/v2/<name>/blobs/uploads/...``: blob upload sessions (spec "Pushing blobs").

Monolithic (POST ``?digest=``, or POST then PUT), chunked (PATCH with or without
``Content-Range``, ``Transfer-Encoding: chunked`` included), mounts, status and cancel. The
``Range`` header answered is ``0-<last offset>`` with no unit, as docker parses it.
"""

from __future__ import annotations

from ..responses import Reply

from ..content import Upload
from ..digests import parse_digest
from ..errors import BlobUploadInvalid, SizeInvalid
from ..ranges import RangeSyntaxError, format_upload_range, parse_content_range
from ..streams import has_body, iter_body
from ..events import BLOB_MEDIA_TYPE
from .context import Context, respond


def _session_headers(ctx: Context, upload: Upload) -> dict[str, str]:
    return {
        "Location": ctx.url("upload", name=upload.name, upload_id=upload.id),
        "Docker-Upload-UUID": upload.id,
        "Range": format_upload_range(upload.offset),
    }


def _created(ctx: Context, name: str, digest: str) -> Reply:
    return respond(201, {
        "Location": ctx.url("blob", name=name, digest=digest),
        "Docker-Content-Digest": digest,
        "Content-Length": "0",
    })


def _chunk_bounds(ctx: Context) -> tuple[int | None, int | None]:
    """``(start, length)`` from ``Content-Range`` and ``Content-Length``; each may be absent."""
    length = ctx.request.content_length
    header = ctx.request.headers.get("Content-Range")
    if not header:
        return None, length
    try:
        chunk = parse_content_range(header)
    except RangeSyntaxError as exc:
        raise BlobUploadInvalid({"Content-Range": header[:64]}, message=str(exc)) from None
    if length is not None and length != chunk.length:
        raise SizeInvalid({"Content-Range": header, "Content-Length": length},
                          message="Content-Length does not match Content-Range")
    return chunk.start, chunk.length


def start_upload(ctx: Context) -> Reply:
    """POST: mount (201), monolithic upload with ``?digest=`` (201), or a new session (202).

    What happens is the content layer's rule (:meth:`~.content.uploads.Uploads.post`); this
    reads the query and the body's framing, and answers.
    """
    name = ctx.params["name"]
    args = ctx.request.args
    mount, digest = args.get("mount"), args.get("digest")
    body, length = None, None
    if digest is not None and has_body(ctx.request):
        _, length = _chunk_bounds(ctx)
        body = iter_body(ctx.request)
    started = ctx.content.post_upload(
        name,
        mount=parse_digest(mount) if mount is not None else None,
        source=args.get("from"),
        digest=parse_digest(digest) if digest is not None else None,
        algorithm=args.get("digest-algorithm") or "sha256",
        body=body,
        length=length,
    )
    if started.upload is not None:
        headers = _session_headers(ctx, started.upload)
        if ctx.content.min_chunk_size:
            headers["OCI-Chunk-Min-Length"] = str(ctx.content.min_chunk_size)
        return respond(202, {**headers, "Content-Length": "0"})
    if started.mounted:
        ctx.record("mount", "blob", digest=str(started.digest), media_type=BLOB_MEDIA_TYPE,
                   size=started.size, from_repository=started.source)
    else:
        ctx.record("push", "blob", digest=str(started.digest), media_type=BLOB_MEDIA_TYPE,
                   size=started.size)
    return _created(ctx, name, str(started.digest))


def upload_status(ctx: Context) -> Reply:
    """GET: 204 with the current ``Range`` (spec "Pushing a blob in chunks")."""
    upload = ctx.content.get_upload(ctx.params["name"], ctx.params["upload_id"])
    return respond(204, _session_headers(ctx, upload))


def patch_upload(ctx: Context) -> Reply:
    """PATCH: append a chunk; 416 (session intact, its ``Location`` and ``Range``) when it does not start at the offset."""
    upload = ctx.content.get_upload(ctx.params["name"], ctx.params["upload_id"])
    start, length = _chunk_bounds(ctx)
    ctx.content.append(upload, iter_body(ctx.request), start=start, length=length)
    return respond(202, {**_session_headers(ctx, upload), "Content-Length": "0"})


def finish_upload(ctx: Context) -> Reply:
    """PUT ``?digest=``: take the optional last chunk, verify, and make the blob visible: 201."""
    upload = ctx.content.get_upload(ctx.params["name"], ctx.params["upload_id"])
    digest_param = ctx.request.args.get("digest")
    if not digest_param:
        raise BlobUploadInvalid(message="digest query parameter required to close an upload")
    digest = parse_digest(digest_param)
    chunks = None
    start, length = None, None
    if has_body(ctx.request):
        start, length = _chunk_bounds(ctx)
        chunks = iter_body(ctx.request)
    size = ctx.content.finish(upload, digest, chunks, start=start, length=length)
    ctx.record("push", "blob", digest=str(digest), media_type=BLOB_MEDIA_TYPE, size=size)
    return _created(ctx, upload.name, str(digest))


def cancel_upload(ctx: Context) -> Reply:
    """DELETE: drop the session and its bytes: 204."""
    upload = ctx.content.get_upload(ctx.params["name"], ctx.params["upload_id"])
    ctx.content.cancel(upload)
    return respond(204, {"Content-Length": "0"})
