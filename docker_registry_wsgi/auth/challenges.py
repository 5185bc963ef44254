"""``WWW-Authenticate`` challenges read as a client does (RFC 7235 section 4.1).

The pull-through proxy reads an upstream registry's challenges with it, and tests read the
registry's own. werkzeug's ``WWWAuthenticate.from_header`` reads one challenge only (a header
with ``Basic ..., Bearer ...`` becomes a Basic challenge holding Bearer's parameters), so this
parser splits them. The grammar's tokens and the error type are the formatter's, in
:mod:`~docker_registry_wsgi.auth.scope`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

from .scope import _TOKEN, _TOKEN68, ChallengeError, format_challenge

__all__ = ["Challenge", "ChallengeError", "parse_challenges", "MAX_CHALLENGE_LENGTH"]

MAX_CHALLENGE_LENGTH = 16384


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    def __str__(self) -> str:
        return format_challenge(self.scheme, self.params, token68=self.token68)


class _Reader:
    """A cursor over a header value for the RFC 7235 grammar."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def match(self, pattern: re.Pattern[str]) -> str | None:
        found = pattern.match(self.text, self.pos)
        if not found:
            return None
        self.pos = found.end()
        return found.group(0)

    def quoted(self) -> str:
        self.pos += 1  # the opening quote
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
            elif char == '"':
                self.pos += 1
                return "".join(out)
            else:
                out.append(char)
                self.pos += 1
        raise ChallengeError("unterminated quoted string")

    def skip_commas(self) -> int:
        """Skip whitespace and commas; return how many commas there were."""
        count = 0
        while True:
            self.skip_ws()
            if self.peek() != ",":
                return count
            self.pos += 1
            count += 1

    def param(self) -> tuple[str, str] | None:
        """``name = value`` here, or ``None`` (position unchanged) if there is none."""
        start = self.pos
        name = self.match(_TOKEN)
        self.skip_ws()
        if name is None or self.peek() != "=":
            self.pos = start
            return None
        self.pos += 1
        self.skip_ws()
        value = self.quoted() if self.peek() == '"' else self.match(_TOKEN)
        if value is None:
            self.pos = start
            return None
        return name.lower(), value


def _end_of_item(reader: _Reader) -> bool:
    reader.skip_ws()
    return reader.at_end() or reader.peek() == ","


def parse_challenges(header: str) -> list[Challenge]:
    """Every challenge in a ``WWW-Authenticate`` value (RFC 7235 section 4.1).

    Parameter names are lower-cased (they are case-insensitive); a name given twice is an error.
    """
    if len(header) > MAX_CHALLENGE_LENGTH:
        raise ChallengeError("challenge too long")
    reader = _Reader(header)
    challenges: list[Challenge] = []
    while True:
        reader.skip_commas()
        if reader.at_end():
            return challenges
        scheme = reader.match(_TOKEN)
        if scheme is None:
            raise ChallengeError(f"expected an auth scheme at offset {reader.pos}")
        params: dict[str, str] = {}
        token68: str | None = None
        if reader.peek() in (" ", "\t"):
            reader.skip_ws()
            first = reader.param()
            if first is not None and _end_of_item(reader):
                params[first[0]] = first[1]
                while reader.skip_commas() and not reader.at_end():
                    item = reader.param()
                    if item is None:
                        break  # a new challenge starts here
                    if item[0] in params:
                        raise ChallengeError(f"parameter {item[0]!r} given twice")
                    params[item[0]] = item[1]
                    if not _end_of_item(reader):
                        raise ChallengeError(f"unexpected {reader.peek()!r} at offset {reader.pos}")
            elif not reader.at_end() and reader.peek() != ",":
                if first is not None:
                    raise ChallengeError(f"unexpected {reader.peek()!r} at offset {reader.pos}")
                token68 = reader.match(_TOKEN68)
                if token68 is None or not _end_of_item(reader):
                    raise ChallengeError(f"unexpected {reader.peek()!r} at offset {reader.pos}")
        elif not _end_of_item(reader):
            raise ChallengeError(f"unexpected {reader.peek()!r} at offset {reader.pos}")
        challenges.append(Challenge(scheme, params, token68))
