"""``/v2/``: the API version check (spec "Determining Support")."""

from __future__ import annotations

from ..responses import Reply

from .context import Context, json_response


def check(ctx: Context) -> Reply:
    """200 with ``{}``; the auth hook has already challenged if it wants credentials."""
    return json_response({})
