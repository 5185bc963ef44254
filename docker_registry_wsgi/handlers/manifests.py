"""``/v2/<name>/manifests/<reference>`` (spec "Pulling manifests", "Pushing Manifests", "Deleting")."""

from __future__ import annotations

from ..responses import Reply
from werkzeug.http import quote_etag

from ..content import StoredManifest
from ..digests import Digest
from ..errors import ManifestInvalid, ManifestTooLarge, ManifestUnknown
from ..manifests import MANIFEST_TYPES
from ..references import parse_reference, parse_tag
from ..streams import read_small_body
from .context import Context, respond


def _acceptable(ctx: Context, stored: StoredManifest) -> bool:
    """Whether the client's ``Accept`` (RFC 9110 12.5.1, read by werkzeug) admits the stored type.

    The most specific media range that matches the type decides, and ``q=0`` on it means "not
    acceptable". A client whose ranges do not match the type at all is refused only when it
    names other manifest types it accepts (as distribution refuses OCI types); no ``Accept``, or
    one naming no manifest type, gets the manifest as stored. Several ``Accept`` headers reach
    WSGI joined by commas.
    """
    header = ctx.request.environ.get("HTTP_ACCEPT", "")
    if ";" not in header:
        # No parameters, so every range weighs 1 (12.4.2): a set answers as werkzeug would, at a
        # tenth of its cost, for the headers docker, containerd and skopeo send on every pull.
        ranges = {item.strip().lower() for item in header.split(",")}
        media_type = stored.media_type
        if not ranges.isdisjoint((media_type, media_type.partition("/")[0] + "/*", "*/*")):
            return True
        return ranges.isdisjoint(MANIFEST_TYPES)
    accept = ctx.request.accept_mimetypes
    if accept.find(stored.media_type) >= 0:  # some range matches the type
        return accept.quality(stored.media_type) > 0
    return not any(quality > 0 and _bare_type(value) in MANIFEST_TYPES for value, quality in accept)


def _bare_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def get_manifest(ctx: Context) -> Reply:
    """GET/HEAD: the manifest exactly as pushed, typed by its own media type.

    Its digest is its strong ETag, by digest and by tag alike: ``If-None-Match`` naming it gets
    304 with the ETag and ``Docker-Content-Digest`` and no body (RFC 9110 13.1.2, as distribution).
    """
    name = ctx.params["name"]
    reference = parse_reference(ctx.params["reference"])
    if ctx.head:
        stored = ctx.content.stat_manifest(name, reference, touch=True)
    else:
        stored = ctx.content.get_manifest(name, reference)
    if not _acceptable(ctx, stored):
        raise ManifestUnknown(
            {"mediaType": stored.media_type},
            message="manifest exists, but the Accept header does not admit its media type",
        )
    etag = quote_etag(str(stored.digest))
    if "HTTP_IF_NONE_MATCH" in ctx.request.environ and ctx.request.if_none_match.contains_weak(
            str(stored.digest)):
        return respond(304, {"ETag": etag, "Docker-Content-Digest": str(stored.digest)})
    headers = {
        "Docker-Content-Digest": str(stored.digest),
        "ETag": etag,
        "Content-Length": str(stored.size),
    }
    if not ctx.head:
        ctx.record("pull", "manifest", digest=str(stored.digest), media_type=stored.media_type,
                   size=stored.size, tag=None if isinstance(reference, Digest) else reference)
    return respond(200, headers, [stored.body] if stored.body else [], stored.media_type)


def put_manifest(ctx: Context) -> Reply:
    """PUT: validate and store; 201 with ``Location``, the digest and ``OCI-Subject``."""
    name = ctx.params["name"]
    reference = parse_reference(ctx.params["reference"])
    tags = [parse_tag(t) for t in ctx.request.args.getlist("tag")] if isinstance(reference, Digest) else []
    # A body that breaks off is a manifest that did not arrive whole: MANIFEST_INVALID, the
    # error the spec lists for this endpoint (BLOB_UPLOAD_INVALID would name a blob session).
    body = read_small_body(ctx.request, ctx.content.max_manifest_size, ManifestTooLarge, ManifestInvalid)
    digest, manifest = ctx.content.put_manifest(
        name, reference, body, ctx.request.headers.get("Content-Type"), tags
    )
    headers = [
        ("Location", ctx.url("manifest", name=name, reference=str(digest))),
        ("Docker-Content-Digest", str(digest)),
        ("Content-Length", "0"),
    ]
    if manifest.subject is not None:
        headers.append(("OCI-Subject", str(manifest.subject.digest)))
    headers.extend(("OCI-Tag", tag) for tag in tags)
    pushed_tags: list[str | None] = [reference] if isinstance(reference, str) else list(tags)
    for tag in pushed_tags or [None]:
        ctx.record("push", "manifest", digest=str(digest), media_type=manifest.media_type,
                   size=len(body), tag=tag)
    return respond(201, headers)


def delete_manifest(ctx: Context) -> Reply:
    """DELETE by digest removes the manifest and its tags; by tag only the tag: 202."""
    reference = parse_reference(ctx.params["reference"])
    ctx.content.delete_manifest(ctx.params["name"], reference)
    if isinstance(reference, Digest):
        ctx.record("delete", "manifest", digest=str(reference))
    else:
        ctx.record("delete", "tag", tag=reference)
    return respond(202, {"Content-Length": "0"})
