"""The ``Authorization: Bearer`` header's token syntax (RFC 6750 section 2.1), without jwt.

Both the registry's token check (:mod:`.token`, which needs the ``auth`` extra) and the
pull-through cache's upstream client (which works without it) read Bearer headers here.
"""

from __future__ import annotations

import re

__all__ = ["InvalidToken", "bearer_token", "MAX_TOKEN_LENGTH"]

#: Longer tokens are refused before anything parses them.
MAX_TOKEN_LENGTH = 16384
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class InvalidToken(Exception):
    """A bearer token that cannot be trusted; the message says why (logged, sent to the client)."""


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; ``None`` if absent or another scheme.

    Raises :class:`InvalidToken` for a Bearer header without a well-formed token.
    """
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    value = value.strip()
    if not value or len(value) > MAX_TOKEN_LENGTH or not _TOKEN68.fullmatch(value):
        raise InvalidToken("malformed bearer token")
    return value
