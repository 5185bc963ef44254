"""``/v2/_catalog``: the repositories, paginated like tags."""

from __future__ import annotations

from ..responses import Reply

from .context import Context, json_response, next_link, pagination


def list_repositories(ctx: Context) -> Reply:
    n, last = pagination(ctx)
    page = ctx.content.repositories(n, last)
    return json_response({"repositories": page.items}, next_link(ctx, "catalog", page, n))
