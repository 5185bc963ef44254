"""``/v2/<name>/tags/list`` (spec "Listing Tags")."""

from __future__ import annotations

from ..responses import Reply

from .context import Context, json_response, next_link, pagination


def list_tags(ctx: Context) -> Reply:
    name = ctx.params["name"]
    n, last = pagination(ctx)
    page = ctx.content.tags(name, n, last)
    return json_response({"name": name, "tags": page.items},
                         next_link(ctx, "tags", page, n, name=name))
