"""``/v2/<name>/referrers/<digest>`` (spec "Listing Referrers")."""

from __future__ import annotations

from ..responses import Reply

from ..digests import parse_digest
from ..manifests import OCI_INDEX
from .context import Context, json_response


def list_referrers(ctx: Context) -> Reply:
    """An image index of the manifests whose ``subject`` is the digest; never a 404."""
    subject = parse_digest(ctx.params["digest"])
    artifact_type = ctx.request.args.get("artifactType") or None
    descriptors = ctx.content.referrers(ctx.params["name"], subject, artifact_type)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": descriptors}
    headers = {"OCI-Filters-Applied": "artifactType"} if artifact_type else {}
    return json_response(index, headers, content_type=OCI_INDEX)
