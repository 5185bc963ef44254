"""Token ``scope`` strings and ``WWW-Authenticate`` challenges: the one parser and formatter of each.

Scopes follow the grammar of the token scope spec (docker-token-auth-scope.md, "Resource Scope
Grammar"): ``type[(class)]:name:action[,action]*``, several separated by spaces; the name may
hold one ``:`` (a registry host's port), so the type ends at the first colon and the actions
start after the last. Challenges follow RFC 7235 section 4.1 (``auth-scheme`` then
comma-separated ``name=value`` parameters, values as tokens or quoted strings).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

from ..references import NAME_PATTERN
from .base import Access

__all__ = [
    "ScopeError",
    "ChallengeError",
    "Challenge",
    "parse_scope",
    "parse_scopes",
    "format_scopes",
    "merge_access",
    "parse_challenges",
    "format_challenge",
    "bearer_challenge",
]

_TYPE = re.compile(r"([a-z0-9]+)(?:\(([a-z0-9]+)\))?")
_HOST = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?"
#: A scope's name may carry the registry's host (token spec, "Resource Scope Grammar").
_NAME = re.compile(rf"(?:{_HOST}/)?{NAME_PATTERN}")
_ACTION = re.compile(r"[a-z]*|\*")
#: RFC 7230 ``token`` characters.
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
MAX_SCOPE_LENGTH = 8192
MAX_CHALLENGE_LENGTH = 16384


class ScopeError(ValueError):
    """A scope string that does not follow the grammar."""


class ChallengeError(ValueError):
    """A ``WWW-Authenticate`` value that does not follow RFC 7235."""


def parse_scope(text: str) -> Access:
    """One resource scope, e.g. ``repository:library/alpine:pull,push``, as an :class:`Access`.

    A resource class (``repository(plugin)``) is accepted and dropped: the spec deprecates it
    and says such scopes equal the plain type. Empty actions are dropped.
    """
    if len(text) > MAX_SCOPE_LENGTH:
        raise ScopeError("scope too long")
    kind, colon, rest = text.partition(":")
    name, colon2, actions = rest.rpartition(":")
    if not colon or not colon2:
        raise ScopeError(f"scope {text!r} is not type:name:actions")
    match = _TYPE.fullmatch(kind)
    if not match:
        raise ScopeError(f"scope {text!r} has an invalid resource type")
    if not _NAME.fullmatch(name) and not (match.group(1) == "registry" and name == "catalog"):
        raise ScopeError(f"scope {text!r} has an invalid resource name")
    wanted = [a for a in actions.split(",")]
    if not all(_ACTION.fullmatch(a) for a in wanted):
        raise ScopeError(f"scope {text!r} has an invalid action")
    return Access(match.group(1), name, frozenset(a for a in wanted if a))


def parse_scopes(values: str | Iterable[str]) -> list[Access]:
    """Every resource scope in one space-separated string or several (``scope`` given twice).

    Accesses to the same resource are merged, in order of first appearance.
    """
    texts = [values] if isinstance(values, str) else list(values)
    parsed = [parse_scope(part) for text in texts for part in text.split(" ") if part]
    return merge_access(parsed)


def merge_access(accesses: Iterable[Access]) -> list[Access]:
    """Merge accesses to the same ``(type, name)``, keeping the order of first appearance."""
    merged: dict[tuple[str, str], frozenset[str]] = {}
    for access in accesses:
        key = (access.type, access.name)
        merged[key] = merged.get(key, frozenset()) | access.actions
    return [Access(kind, name, actions) for (kind, name), actions in merged.items()]


def format_scopes(accesses: Iterable[Access]) -> str:
    """The space-separated scope list of ``accesses``, merged, actions sorted."""
    return " ".join(access.scope for access in merge_access(accesses))


@dataclass(frozen=True)
class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: a scheme and its parameters."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)
    token68: str | None = None

    def __str__(self) -> str:
        return format_challenge(self.scheme, self.params, token68=self.token68)


def _quote(value: str) -> str:
    if any(ord(c) < 0x20 or ord(c) == 0x7F or ord(c) > 0xFF for c in value):
        raise ChallengeError("a challenge parameter cannot hold control or non-latin-1 characters")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_challenge(
    scheme: str, params: Mapping[str, str] | Sequence[tuple[str, str]] = (), *, token68: str | None = None
) -> str:
    """``scheme k1="v1",k2="v2"``: every value quoted (clients expect quotes on ``realm``)."""
    if not _TOKEN.fullmatch(scheme):
        raise ChallengeError(f"invalid auth scheme {scheme!r}")
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    if token68 is not None:
        if items or not _TOKEN68.fullmatch(token68):
            raise ChallengeError("token68 must be alone and of the token68 form")
        return f"{scheme} {token68}"
    for name, _ in items:
        if not _TOKEN.fullmatch(name):
            raise ChallengeError(f"invalid parameter name {name!r}")
    rendered = ",".join(f"{name}={_quote(value)}" for name, value in items)
    return f"{scheme} {rendered}" if rendered else scheme


def bearer_challenge(
    realm: str,
    service: str | None = None,
    scope: Iterable[Access] = (),
    error: str | None = None,
    description: str | None = None,
) -> str:
    """The ``Bearer`` challenge of the token spec ("How to authenticate", RFC 6750 section 3)."""
    params: list[tuple[str, str]] = [("realm", realm)]
    if service:
        params.append(("service", service))
    scopes = format_scopes(scope)
    if scopes:
        params.append(("scope", scopes))
    if error:
        params.append(("error", error))
    if description:
        params.append(("error_description", description))
    return format_challenge("Bearer", params)


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
