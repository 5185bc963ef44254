"""Scope strings and the WWW-Authenticate challenges the registry formats (docker-token-auth-scope.md
"Resource Scope Grammar"; RFC 7235 section 4.1; RFC 6750 section 3). Reading challenges:
test_challenges.py."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.scope import (
    ChallengeError,
    ScopeError,
    bearer_challenge,
    format_challenge,
    format_scopes,
    parse_scope,
    parse_scopes,
)

alnum = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "-", "--"])
component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    alnum, st.lists(st.tuples(separator, alnum), max_size=2),
)
hostname = st.builds(
    lambda parts, port: ".".join(parts) + (f":{port}" if port is not None else ""),
    st.lists(st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,4}[a-zA-Z0-9])?", fullmatch=True), min_size=1, max_size=3),
    st.one_of(st.none(), st.integers(1, 65535)),
)
repository_name = st.builds(
    lambda host, parts: "/".join(([host] if host else []) + parts),
    st.one_of(st.none(), hostname),
    st.lists(component, min_size=1, max_size=3),
)
actions = st.frozensets(st.sampled_from(["pull", "push", "delete", "*"]), min_size=1)
repository_access = st.builds(lambda n, a: Access("repository", n, a), repository_name, actions)
accesses = st.lists(st.one_of(repository_access, st.just(Access.catalog())), max_size=4)


@given(repository_access)
def test_scope_round_trip(access: Access) -> None:
    assert parse_scope(access.scope) == access


@given(accesses)
def test_scope_list_round_trip(items: list[Access]) -> None:
    text = format_scopes(items)
    assert format_scopes(parse_scopes(text)) == text
    assert {(a.type, a.name) for a in parse_scopes(text)} == {(a.type, a.name) for a in items}


@given(st.text(max_size=80))
def test_parse_scopes_raises_only_scope_error(text: str) -> None:
    try:
        result = parse_scopes(text)
    except ScopeError:
        return
    for access in result:
        assert parse_scope(access.scope) == access


def test_name_with_port_keeps_its_colon() -> None:
    # The spec's note: a naive split on the first three colons is wrong.
    assert parse_scope("repository:localhost:5000/a/b:pull,push") == Access.repository(
        "localhost:5000/a/b", "pull", "push"
    )


def test_resource_class_is_dropped_and_merged() -> None:
    assert parse_scopes(["repository(plugin):a:pull", "repository:a:push"]) == [
        Access.repository("a", "pull", "push")
    ]


def test_several_scope_values_and_space_lists() -> None:
    got = parse_scopes(["repository:a:pull repository:b:push", "registry:catalog:*"])
    assert got == [Access.repository("a", "pull"), Access.repository("b", "push"), Access.catalog()]
    assert parse_scopes([]) == [] and parse_scopes("") == []


@pytest.mark.parametrize(
    "bad",
    ["repository", "repository:a", "Repository:a:pull", "repository:A:pull", "repository:a:PULL",
     "repository:a/../b:pull", "repository::pull", "repository:a:pu-ll", "x:y:z:w"],
)
def test_invalid_scopes(bad: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(bad)


# -- formatting challenges ---------------------------------------------------------------


def test_bearer_challenge_matches_the_spec_example() -> None:
    # docker-token-auth-token.md, "How to authenticate".
    header = bearer_challenge(
        "https://auth.docker.io/token", "registry.docker.io",
        [Access.repository("samalba/my-app", "push", "pull")],
    )
    assert header == (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push"'
    )


@given(st.text(st.characters(max_codepoint=0x1F) | st.characters(min_codepoint=0x100), min_size=1, max_size=5))
def test_format_refuses_header_injection(bad: str) -> None:
    assume(any(ord(c) < 0x20 or ord(c) > 0xFF for c in bad))
    with pytest.raises(ChallengeError):
        format_challenge("Bearer", {"realm": "x" + bad})
