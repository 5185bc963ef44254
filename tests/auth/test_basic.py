"""BasicAuth and the one Basic credentials parser (RFC 7617)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.basic import (
    BasicAuth,
    MalformedCredentials,
    parse_basic_credentials,
)
from docker_registry_wsgi.auth.policy import RulePolicy
from docker_registry_wsgi.errors import Denied, Unauthorized

from .conftest import basic, make_request


@given(st.text(min_size=1).filter(lambda u: ":" not in u), st.text())
def test_round_trip(user: str, password: str) -> None:
    assert parse_basic_credentials(basic(user, password)) == (user, password)


@given(st.text(max_size=60))
def test_raises_only_malformed(header: str) -> None:
    try:
        credentials = parse_basic_credentials(header)
    except MalformedCredentials:
        return
    assert credentials is None or credentials[0]  # a user name, or anonymous


@given(st.text(max_size=40))
def test_a_password_without_user_name_is_malformed_unless_both_are_empty(password: str) -> None:
    header = basic("", password)
    if password:
        with pytest.raises(MalformedCredentials):
            parse_basic_credentials(header)
    else:
        assert parse_basic_credentials(header) is None


@pytest.mark.parametrize("header", ["Basic Og==", "basic  Og==  ", "BASIC Og=="])
def test_empty_credentials_are_anonymous(header: str) -> None:
    """What skopeo and podman answer a Basic challenge with when they have no credentials."""
    assert parse_basic_credentials(header) is None


@pytest.mark.parametrize(
    "header",
    ["Basic", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(),
     "Basic " + base64.b64encode(b":pw").decode(), "Basic " + base64.b64encode(b"\xff:\xfe").decode(),
     "Basic " + "A" * 9000],
)
def test_malformed(header: str) -> None:
    with pytest.raises(MalformedCredentials):
        parse_basic_credentials(header)


@pytest.mark.parametrize("header", [None, "", "Bearer abc", "Digest x=y"])
def test_not_basic(header: str | None) -> None:
    assert parse_basic_credentials(header) is None


def test_password_may_hold_colons() -> None:
    assert parse_basic_credentials(basic("u", "a:b:c")) == ("u", "a:b:c")
    assert parse_basic_credentials("basic " + base64.b64encode(b"u:p").decode()) == ("u", "p")


def verify(user: str, password: str) -> str | None:
    return user if (user, password) in {("alice", "pw"), ("bob", "pw")} else None


def test_basic_auth_with_policy() -> None:
    policy = RulePolicy.from_mapping({
        "anonymous_pull": ["public/*"],
        "rules": [{"repositories": ["*"], "users": ["alice"], "actions": ["*"]}],
    })
    auth = BasicAuth(verify, policy, realm='a "quoted" realm')
    pull_public = [Access.repository("public/x", "pull")]
    push = [Access.repository("team/x", "pull", "push")]
    assert auth.authorize(make_request(), pull_public) is None
    assert auth.authorize(make_request(basic("alice", "pw")), push) == "alice"
    with pytest.raises(Denied):
        auth.authorize(make_request(basic("bob", "pw")), push)
    with pytest.raises(Unauthorized) as info:
        auth.authorize(make_request(), push)
    assert info.value.headers["WWW-Authenticate"] == 'Basic realm="a \\"quoted\\" realm"'
    with pytest.raises(Unauthorized):  # /v2/ itself always challenges the anonymous
        auth.authorize(make_request(), [])
    with pytest.raises(Unauthorized):  # wrong credentials are refused even for public pulls
        auth.authorize(make_request(basic("alice", "nope")), pull_public)


def test_basic_auth_treats_empty_credentials_as_anonymous() -> None:
    calls: list[tuple[str, str]] = []

    def counting(user: str, password: str) -> str | None:
        calls.append((user, password))
        return verify(user, password)

    policy = RulePolicy.from_mapping({"anonymous_pull": ["public/*"],
                                      "rules": [{"repositories": ["*"], "users": ["alice"], "actions": ["*"]}]})
    auth = BasicAuth(counting, policy, realm="r")
    empty = make_request("Basic Og==")
    assert auth.authorize(empty, [Access.repository("public/x", "pull")]) is None
    for needed in ([Access.repository("public/x", "pull", "push")], [Access.repository("team/x", "pull")], []):
        with pytest.raises(Unauthorized) as info:
            auth.authorize(empty, needed)
        assert info.value.message == "authentication required"  # not "malformed credentials"
        assert info.value.headers["WWW-Authenticate"] == 'Basic realm="r"'
    assert calls == []  # no password was checked
