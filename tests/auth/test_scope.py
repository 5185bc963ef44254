"""Scope strings and WWW-Authenticate challenges (docker-token-auth-scope.md "Resource Scope
Grammar"; RFC 7235 section 4.1; RFC 6750 section 3)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.scope import (
    Challenge,
    ChallengeError,
    ScopeError,
    bearer_challenge,
    format_challenge,
    format_scopes,
    parse_challenges,
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


# -- challenges ---------------------------------------------------------------------------

param_value = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters="\x7f"), max_size=30
)
param_name = st.from_regex(r"[a-zA-Z][a-zA-Z0-9_-]{0,10}", fullmatch=True)
scheme = st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,10}", fullmatch=True)
challenge = st.builds(
    lambda s, p: Challenge(s, p),
    scheme,
    st.dictionaries(param_name.map(str.lower), param_value, max_size=4),
)


@given(st.lists(challenge, min_size=1, max_size=3))
def test_challenge_round_trip(challenges: list[Challenge]) -> None:
    header = ", ".join(str(c) for c in challenges)
    assert parse_challenges(header) == challenges


@given(st.text(max_size=100))
def test_parse_challenges_raises_only_challenge_error(text: str) -> None:
    try:
        parse_challenges(text)
    except ChallengeError:
        pass


@given(st.lists(repository_access, max_size=3), st.sampled_from([None, "invalid_token", "insufficient_scope"]))
def test_bearer_challenge_round_trip(items: list[Access], error: str | None) -> None:
    header = bearer_challenge("https://auth.example/token", "registry.example", items, error)
    [parsed] = parse_challenges(header)
    assert parsed.scheme == "Bearer"
    assert parsed.params["realm"] == "https://auth.example/token"
    assert parsed.params["service"] == "registry.example"
    assert parse_scopes(parsed.params.get("scope", "")) == parse_scopes(format_scopes(items))
    assert parsed.params.get("error") == error


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


def test_parse_real_world_headers() -> None:
    assert parse_challenges('Basic realm="x", Bearer realm=y,error="insufficient_scope"') == [
        Challenge("Basic", {"realm": "x"}),
        Challenge("Bearer", {"realm": "y", "error": "insufficient_scope"}),
    ]
    assert parse_challenges("Negotiate abc==, Basic") == [
        Challenge("Negotiate", {}, "abc=="), Challenge("Basic", {})
    ]
    assert parse_challenges('Bearer REALM="a\\"b"') == [Challenge("Bearer", {"realm": 'a"b'})]


@pytest.mark.parametrize(
    "bad", ['Bearer realm="x",realm="y"', "Foo a=b c", "Foo =", 'Bearer realm="open', "=x", "Foo a=b,=c", "Foo a=b d=e"]
)
def test_invalid_challenges(bad: str) -> None:
    with pytest.raises(ChallengeError):
        parse_challenges(bad)


@given(st.text(st.characters(max_codepoint=0x1F) | st.characters(min_codepoint=0x100), min_size=1, max_size=5))
def test_format_refuses_header_injection(bad: str) -> None:
    assume(any(ord(c) < 0x20 or ord(c) > 0xFF for c in bad))
    with pytest.raises(ChallengeError):
        format_challenge("Bearer", {"realm": "x" + bad})
