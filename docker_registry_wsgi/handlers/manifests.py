"""``/v2/<name>/manifests/<reference>`` (spec "Pulling manifests", "Pushing Manifests", "Deleting")."""

from __future__ import annotations

from ..responses import Reply

from ..content import StoredManifest
from ..digests import Digest
from ..errors import ManifestInvalid, ManifestTooLarge, ManifestUnknown
from ..manifests import MANIFEST_TYPES
from ..references import parse_reference, parse_tag
from ..streams import read_small_body
from .context import Context, respond


def _acceptable(ctx: Context, stored: StoredManifest) -> bool:
    """Whether the client's ``Accept`` admits the stored type.

    Only a client that lists manifest types, none of them this one and no wildcard, is refused
    (as distribution does for OCI types); no ``Accept`` at all means anything goes. Several
    ``Accept`` headers reach WSGI joined by commas.
    """
    header = ctx.request.environ.get("HTTP_ACCEPT")
    if not header:
        return True
    accepted = {item.split(";", 1)[0].strip().lower() for item in header.split(",")}
    if stored.media_type in accepted or "*/*" in accepted or "application/*" in accepted:
        return True
    return accepted.isdisjoint(MANIFEST_TYPES)


def get_manifest(ctx: Context) -> Reply:
    """GET/HEAD: the manifest exactly as pushed, typed by its own media type."""
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
    etag = f'"{stored.digest}"'
    headers = {
        "Docker-Content-Digest": str(stored.digest),
        "ETag": etag,
        "Content-Length": str(stored.size),
    }
    if isinstance(reference, Digest) and etag in ctx.request.environ.get("HTTP_IF_NONE_MATCH", ""):
        return respond(304, {"ETag": etag, "Docker-Content-Digest": str(stored.digest)})
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
