"""Token ``scope`` strings (parsed and formatted) and the ``WWW-Authenticate`` challenges the
registry sends (formatted; a client reads them with :mod:`~docker_registry_wsgi.auth.challenges`).

Scopes follow the grammar of the token scope spec (docker-token-auth-scope.md, "Resource Scope
Grammar"): ``type[(class)]:name:action[,action]*``, several separated by spaces; the name may
hold one ``:`` (a registry host's port), so the type ends at the first colon and the actions
start after the last. Challenges follow RFC 7235 section 4.1 (``auth-scheme`` then
comma-separated ``name=value`` parameters, values as tokens or quoted strings).
"""

from __future__ import annotations

import re
from typing import Iterable, Mapping, Sequence

from ..references import NAME_PATTERN
from .base import Access

__all__ = [
    "ScopeError",
    "ChallengeError",
    "parse_scope",
    "parse_scopes",
    "format_scopes",
    "merge_access",
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
