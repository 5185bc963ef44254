"""Reading ``WWW-Authenticate`` challenges as a client (RFC 7235 section 4.1; RFC 6750 section 3;
docker-token-auth-token.md "How to authenticate"), round-tripped through the registry's formatter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.challenges import Challenge, ChallengeError, parse_challenges
from docker_registry_wsgi.auth.scope import bearer_challenge, format_scopes, parse_scopes

from .test_scope import repository_access

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
