"""Access policies: CallablePolicy and RulePolicy (globs, users, groups, anonymous, catalog, files)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.policy import CallablePolicy, PolicyError, Rule, RulePolicy, identity_name

ALL = ("pull", "push", "delete")


def repo(name: str, *actions: str) -> Access:
    return Access.repository(name, *(actions or ALL))


def test_callable_policy_forms() -> None:
    assert CallablePolicy(lambda i, a: True).granted("u", repo("a")) == frozenset(ALL)
    assert CallablePolicy(lambda i, a: False).granted("u", repo("a")) == frozenset()
    assert CallablePolicy(lambda i, a: None).granted("u", repo("a")) == frozenset()
    only_pull = CallablePolicy(lambda i, a: ["pull", "other"])
    assert only_pull.granted("u", repo("a", "pull", "push")) == {"pull"}


def test_identity_name() -> None:
    class WithName:
        name = "n"

    assert identity_name(None) is None
    assert identity_name("x") == "x"
    assert identity_name(WithName()) == "n"


SAMPLE = {
    "anonymous_pull": ["public/*"],
    "groups": {"admins": ["alice"], "ci": ["robot"]},
    "rules": [
        {"repositories": ["*"], "users": ["@admins"], "actions": ["*"], "catalog": True},
        {"repositories": ["team/*"], "users": ["@ci"], "actions": ["pull", "push"]},
        {"repositories": ["{user}/*"], "users": ["*"], "actions": ["pull", "push", "delete"]},
        {"repositories": ["team/*", "public/*"], "users": ["*"], "actions": ["pull"]},
    ],
}


@pytest.fixture
def policy() -> RulePolicy:
    return RulePolicy.from_mapping(SAMPLE)


@pytest.mark.parametrize(
    "identity,access,expected",
    [
        ("alice", repo("anything/at/all"), ALL),
        ("robot", repo("team/app"), ("pull", "push")),
        ("robot", repo("team/nested/app"), ("pull", "push")),  # * crosses /
        ("robot", repo("other/app"), ()),
        ("bob", repo("bob/app"), ALL),  # {user}
        ("bob", repo("bobby/app"), ()),
        ("bob", repo("team/app"), ("pull",)),
        ("b*", repo("bob/app"), ()),  # a user name is never a glob
        (None, repo("public/app"), ("pull",)),
        (None, repo("team/app"), ()),
        ("alice", Access.catalog(), ("*",)),
        ("bob", Access.catalog(), ()),
        (None, Access.catalog(), ()),
        ("alice", Access("other", "x", frozenset({"pull"})), ()),
    ],
)
def test_rule_policy(policy: RulePolicy, identity: str | None, access: Access, expected: tuple[str, ...]) -> None:
    assert policy.granted(identity, access) == frozenset(expected)


def test_anonymous_pull_everything_and_catalog() -> None:
    policy = RulePolicy(anonymous_pull=True, anonymous_catalog=True)
    assert policy.granted(None, repo("a/b")) == {"pull"}
    assert policy.granted(None, Access.catalog()) == {"*"}
    assert policy.granted("someone", repo("a/b")) == frozenset()


def test_file_formats_agree(tmp_path: Path, policy: RulePolicy) -> None:
    json_path = tmp_path / "rules.json"
    json_path.write_text(json.dumps(SAMPLE))
    toml_path = tmp_path / "rules.toml"
    toml_path.write_text(
        """
anonymous_pull = ["public/*"]
[groups]
admins = ["alice"]
ci = ["robot"]
[[rules]]
repositories = ["*"]
users = ["@admins"]
actions = ["*"]
catalog = true
[[rules]]
repositories = ["team/*"]
users = ["@ci"]
actions = ["pull", "push"]
[[rules]]
repositories = ["{user}/*"]
users = ["*"]
actions = ["pull", "push", "delete"]
[[rules]]
repositories = ["team/*", "public/*"]
users = ["*"]
actions = ["pull"]
"""
    )
    ini_path = tmp_path / "rules.ini"
    ini_path.write_text(
        """
[policy]
anonymous_pull = public/*
[groups]
admins = alice
ci = robot
[rule admins]
repositories = *
users = @admins
actions = *
catalog = yes
[rule ci]
repositories = team/*
users = @ci
actions = pull, push
[rule own namespace]
repositories = {user}/*
users = *
actions = pull push delete
[rule readers]
repositories = team/*, public/*
users = *
actions = pull
"""
    )
    cases = [(i, a) for i in ("alice", "robot", "bob", None) for a in
             (repo("team/x"), repo("bob/x"), repo("public/y"), repo("z"), Access.catalog())]
    expected = [policy.granted(i, a) for i, a in cases]
    for path in (json_path, toml_path, ini_path):
        loaded = RulePolicy.from_file(path)
        assert [loaded.granted(i, a) for i, a in cases] == expected, path


def test_ini_anonymous_pull_boolean(tmp_path: Path) -> None:
    path = tmp_path / "r.ini"
    path.write_text("[policy]\nanonymous_pull = true\n")
    assert RulePolicy.from_file(path).granted(None, repo("x")) == {"pull"}


@pytest.mark.parametrize(
    "data,message",
    [
        ({"rules": [{"repositories": ["*"], "actions": ["fly"]}]}, "unknown action"),
        ({"rules": [{"repositories": ["*"], "users": ["@nogroup"]}]}, "not defined"),
        ({"rules": [{"repositories": ["*"], "users": []}]}, "at least one user"),
        ({"rules": [{"repositories": "*", "colour": "red"}]}, "unknown key"),
        ({"rule": []}, "unknown key"),
        ({"rules": [{"repositories": [1]}]}, "list of non-empty strings"),
        ({"anonymous_catalog": "yes"}, "true or false"),
        ({"groups": ["a"]}, "groups must map"),
        ([], "top"),
    ],
)
def test_bad_rules_are_refused_with_a_message(data: object, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        RulePolicy.from_mapping(data)  # type: ignore[arg-type]


@pytest.mark.parametrize("name,text", [("r.json", "{nope"), ("r.toml", "a = "), ("r.ini", "[x]\na=b"),
                                       ("r.yaml", "a: b")])
def test_bad_files(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PolicyError, match=str(path)):
        RulePolicy.from_file(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        RulePolicy.from_file(tmp_path / "none.json")


def test_rule_star_action_means_all() -> None:
    assert Rule(("x",), ("u",), frozenset({"*"})).actions == frozenset(ALL)
