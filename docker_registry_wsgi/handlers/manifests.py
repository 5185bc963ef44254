"""``/v2/<name>/manifests/<reference>`` (spec "Pulling manifests", "Pushing Manifests", "Deleting")."""

from __future__ import annotations

from werkzeug.wrappers import Response

from ..content import StoredManifest
from ..digests import Digest
from ..errors import ManifestTooLarge, ManifestUnknown
from ..manifests import MANIFEST_TYPES
from ..references import parse_reference, parse_tag
from ..streams import read_small_body
from .context import Context, respond


def _acceptable(ctx: Context, stored: StoredManifest) -> bool:
    """Whether the client's ``Accept`` admits the stored type.

    Only a client that lists manifest types, none of them this one and no wildcard, is refused
    (as distribution does for OCI types); no ``Accept`` at all means anything goes.
    """
    accept = ctx.request.accept_mimetypes
    if not accept or accept.best_match([stored.media_type]):
        return True
    return not any(value in MANIFEST_TYPES for value, _ in accept)


def get_manifest(ctx: Context) -> Response:
    """GET/HEAD: the manifest exactly as pushed, typed by its own media type."""
    name = ctx.params["name"]
    reference = parse_reference(ctx.params["reference"])
    if ctx.head:
        stored = ctx.content.stat_manifest(name, reference)
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
    if isinstance(reference, Digest) and etag in ctx.request.headers.get("If-None-Match", ""):
        return respond(304, {"ETag": etag, "Docker-Content-Digest": str(stored.digest)})
    return respond(200, headers, stored.body or b"", stored.media_type)


def put_manifest(ctx: Context) -> Response:
    """PUT: validate and store; 201 with ``Location``, the digest and ``OCI-Subject``."""
    name = ctx.params["name"]
    reference = parse_reference(ctx.params["reference"])
    tags = [parse_tag(t) for t in ctx.request.args.getlist("tag")] if isinstance(reference, Digest) else []
    body = read_small_body(ctx.request, ctx.content.max_manifest_size, ManifestTooLarge)
    digest, manifest = ctx.content.put_manifest(
        name, reference, body, ctx.request.headers.get("Content-Type"), tags
    )
    headers = {
        "Location": ctx.url("manifest", name=name, reference=str(digest)),
        "Docker-Content-Digest": str(digest),
        "Content-Length": "0",
    }
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject.digest)
    response = respond(201, headers)
    for tag in tags:
        response.headers.add("OCI-Tag", tag)
    return response


def delete_manifest(ctx: Context) -> Response:
    """DELETE by digest removes the manifest and its tags; by tag only the tag: 202."""
    ctx.content.delete_manifest(ctx.params["name"], parse_reference(ctx.params["reference"]))
    return respond(202, {"Content-Length": "0"})
