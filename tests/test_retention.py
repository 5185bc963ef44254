"""Retention policies: the rules file (JSON, TOML), rule order and globs, plans, durations, dry-run text."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import tempfile
import tomllib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi.auth.policy import Rule
from docker_registry_wsgi.retention import (
    RepositoryPlan,
    RetentionError,
    RetentionPolicy,
    RetentionRule,
    TagInfo,
    format_duration,
    parse_duration,
    render_plan,
    render_summary,
)
from tests.unit_fixtures import FAST, repository_names, tags as tag_names

HOUR = 3600.0
DOC_BASE = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc).timestamp()


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def infos(**pushed: float) -> dict[str, TagInfo]:
    """Tags named by the keywords, each on a manifest of its own, pushed at the given times."""
    return {tag: TagInfo(digest(tag), when) for tag, when in pushed.items()}


def write(directory: Path, name: str, text: str | bytes) -> Path:
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, "utf-8")
    return path


# -- the documentation's examples ---------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "retention.rst"

DOC_RULES = (
    RetentionRule(("prod/*",)),
    RetentionRule(("ci/*",), keep_last=3, keep_tags=("latest", "v*"), delete_untagged_after=36 * HOUR),
    RetentionRule(("*",), keep_last=20, delete_untagged_after=7 * 24 * HOUR),
)


def doc_block(opening: str) -> str:
    """The indented block that follows the line ending in ``opening`` in docs/retention.rst."""
    lines = DOCS.read_text("utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.endswith(opening)) + 1
    block: list[str] = []
    for line in lines[start:]:
        if line and not line.startswith("   "):
            break
        block.append(line[3:])
    return "\n".join(block).strip("\n")


def test_docs_toml_and_json_examples_are_one_policy(tmp_path: Path) -> None:
    toml = RetentionPolicy.from_file(write(tmp_path, "retention.toml", doc_block(".. code-block:: toml")))
    from_json = RetentionPolicy.from_file(write(tmp_path, "retention.json", doc_block(".. code-block:: json")))
    assert toml.rules == DOC_RULES
    assert from_json == toml
    assert toml.source == str(tmp_path / "retention.toml")


def test_docs_dry_run_sample_is_what_the_renderer_prints(tmp_path: Path) -> None:
    """The scenario the docs describe in words, rendered, is the sample printed there."""
    policy = RetentionPolicy.from_file(write(tmp_path, "retention.toml", doc_block(".. code-block:: toml")))
    policy = RetentionPolicy(policy.rules, source="retention.toml")
    ci = {f"build-{i}": TagInfo(digest(f"build-{i}"), DOC_BASE + (i - 1) * HOUR) for i in range(1, 7)}
    ci["latest"] = TagInfo(digest("build-6"), DOC_BASE + 5 * HOUR)
    ci["v1.0"] = TagInfo(digest("build-1"), DOC_BASE - 30 * 24 * HOUR)
    ci["old"] = TagInfo(digest("old"), 0.0)
    plans = [policy.plan("ci/app", ci), policy.plan("prod/api", {"v2": TagInfo(digest("v2"), DOC_BASE)})]
    printed = [line for plan in plans for line in render_plan(plan)] + render_summary(plans)
    assert "\n".join(printed) == doc_block("with one tag::")
    assert [d.tag for d in plans[0].keep] == ["build-6", "latest", "build-5", "build-4", "v1.0"]


# -- plans --------------------------------------------------------------------------------------


def test_keep_last_counts_only_tags_keep_tags_does_not_keep() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=2, keep_tags=("latest",))])
    plan = policy.plan("app", infos(latest=10, a=9, b=8, c=7))
    assert [d.tag for d in plan.keep] == ["latest", "a", "b"]
    assert plan.tags_to_delete == ("c",)
    assert [d.reason for d in plan.keep] == [
        "matches keep_tags 'latest'",
        "within the last 2 by push time (#1 not counting keep_tags)",
        "within the last 2 by push time (#2 not counting keep_tags)",
    ]
    assert plan.delete[0].reason == "beyond the last 2 by push time (#3 not counting keep_tags)"
    assert (plan.rule_number, plan.rule) == (1, policy.rules[0])


def test_equal_push_times_are_ordered_by_tag_name() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=1)])
    plan = policy.plan("app", infos(zeta=5, alpha=5, mid=5))
    assert [d.tag for d in plan.keep] == ["alpha"]
    assert plan.tags_to_delete == ("mid", "zeta")
    assert plan.delete[0].reason == "beyond the last 1 by push time (#2)"


def test_tags_without_push_time_count_as_oldest() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=1)])
    plan = policy.plan("app", {"legacy": TagInfo(digest("x")), "new": TagInfo(digest("y"), 1.0)})
    assert plan.tags_to_delete == ("legacy",)
    assert TagInfo(digest("x")).pushed == 0.0


def test_keep_last_zero_deletes_every_tag_keep_tags_does_not_keep() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=0, keep_tags=("v*",))])
    plan = policy.plan("app", infos(v1=1, latest=3, build=2))
    assert plan.tags_to_delete == ("latest", "build")
    assert [d.tag for d in plan.keep] == ["v1"]


def test_a_rule_without_keep_last_deletes_no_tag_but_may_delete_untagged() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), delete_untagged_after=60.0)])
    plan = policy.plan("app", infos(a=1, b=2))
    assert plan.delete == ()
    assert {d.reason for d in plan.keep} == {"rule 1 has no keep_last"}
    assert plan.untagged_after == 60.0


def test_no_matching_rule_leaves_the_repository_alone() -> None:
    policy = RetentionPolicy([RetentionRule(("team/*",), keep_last=0, delete_untagged_after=0.0)], source="r.toml")
    plan = policy.plan("other/app", infos(a=1))
    assert plan == RepositoryPlan("other/app", "r.toml", None, None, (), plan.keep, None)
    assert [(d.tag, d.keep, d.reason) for d in plan.keep] == [
        ("a", True, "no retention rule matches the repository")
    ]
    assert render_plan(plan) == ["other/app: no retention rule matches; nothing deleted (1 tag kept)"]


def test_first_matching_rule_wins_and_an_empty_rule_exempts() -> None:
    policy = RetentionPolicy([
        RetentionRule(("ci/keep-all",)),
        RetentionRule(("ci/*",), keep_last=1, delete_untagged_after=HOUR),
        RetentionRule(("*",), keep_last=5, delete_untagged_after=0.0),
    ])
    tags = infos(a=3, b=2, c=1)
    exempt, ci, other = (policy.plan(name, tags) for name in ("ci/keep-all", "ci/app/nested", "app"))
    assert (exempt.rule_number, exempt.delete, exempt.untagged_after) == (1, (), None)
    assert (ci.rule_number, ci.tags_to_delete, ci.untagged_after) == (2, ("b", "c"), HOUR)
    assert (other.rule_number, other.tags_to_delete, other.untagged_after) == (3, (), 0.0)
    assert policy.rule_for("ci/app") == (2, policy.rules[1])
    assert policy.rule_for("x") == (3, policy.rules[2])
    assert RetentionPolicy().rule_for("x") is None


def test_tags_on_one_manifest_are_judged_each_on_its_own() -> None:
    shared = digest("m")
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=1)])
    plan = policy.plan("app", {"a": TagInfo(shared, 5), "b": TagInfo(shared, 5)})
    assert [(d.tag, d.digest) for d in plan.keep] == [("a", shared)]
    assert [(d.tag, d.digest) for d in plan.delete] == [("b", shared)]


def test_keep_tags_globs_are_case_sensitive() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=0, keep_tags=("latest", "v[0-9]*"))])
    plan = policy.plan("app", infos(latest=1, Latest=2, v1=3, V1=4, vx=5))
    assert [d.tag for d in plan.keep] == ["v1", "latest"]
    assert plan.tags_to_delete == ("vx", "V1", "Latest")


def test_empty_repository_plan() -> None:
    plan = RetentionPolicy([RetentionRule(("*",), keep_last=1)]).plan("app", {})
    assert (plan.delete, plan.keep) == ((), ())


# -- globs: the access rules' semantics -----------------------------------------------------------


@pytest.mark.parametrize(
    "glob,name,matches",
    [
        ("team/*", "team/a", True),
        ("team/*", "team/a/b", True),  # * crosses /
        ("ci/**", "ci/a/b", True),  # ** is * twice
        ("team/*", "teams/a", False),
        ("team/*", "team", False),
        ("team/?", "team/ab", False),
        ("team/?", "team/a", True),
        ("[ab]/*", "a/x", True),
        ("[!ab]/*", "a/x", False),
        ("app", "app/x", False),  # the whole name
        ("app", "my/app", False),
    ],
)
def test_repository_globs(glob: str, name: str, matches: bool) -> None:
    assert RetentionRule((glob,)).matches(name) is matches


globs = st.lists(
    st.sampled_from(["a", "b", "/", "*", "?", "[ab]", "[!a]", "-", "."]), min_size=1, max_size=6
).map("".join)


@FAST
@given(globs, st.text(alphabet="ab/-.", min_size=1, max_size=8))
def test_globs_match_as_the_access_rules_do(glob: str, name: str) -> None:
    """A retention glob and an access-rule glob agree on every name."""
    assert RetentionRule((glob,)).matches(name) == Rule(repositories=(glob,)).matches(name, "user")


# -- properties of plans -------------------------------------------------------------------------

KEEP_TAG_GLOBS = ["latest", "v*", "*-rc?", "[ab]*", "stable"]


@st.composite
def rules(draw: st.DrawFn) -> RetentionRule:
    keep_last = draw(st.none() | st.integers(0, 6))
    keep_tags = () if keep_last is None else tuple(draw(st.lists(st.sampled_from(KEEP_TAG_GLOBS), max_size=3)))
    after = draw(st.none() | st.floats(0, 1e9))
    return RetentionRule(("*",), keep_last=keep_last, keep_tags=keep_tags, delete_untagged_after=after)


# Few distinct push times, so that ties are common; 0 is a tag without a push time.
tag_sets = st.dictionaries(
    tag_names | st.sampled_from(["latest", "v1", "v2-rc1", "stable", "alpha", "beta"]),
    st.builds(TagInfo, st.sampled_from([digest("x"), digest("y")]), st.sampled_from([0.0, 1.0, 2.0, 1e9])),
    max_size=12,
)


@FAST
@given(rules(), tag_sets)
def test_keep_last_deletes_only_beyond_n_and_never_a_kept_tag(rule: RetentionRule, tags: dict[str, TagInfo]) -> None:
    plan = RetentionPolicy([rule]).plan("app", tags)
    deleted = {d.tag for d in plan.delete}
    kept = {d.tag for d in plan.keep}
    assert deleted | kept == set(tags) and not deleted & kept  # a partition
    assert len(plan.delete) + len(plan.keep) == len(tags)
    pinned = {tag for tag in tags if rule.pinned_by(tag)}
    assert not deleted & pinned
    if rule.keep_last is None:
        assert not deleted
    else:
        assert len(deleted) == max(0, len(tags) - len(pinned) - rule.keep_last)
        assert len(deleted) <= max(0, len(tags) - rule.keep_last)
        # Every deleted tag is older (or equal and later by name) than every tag kept by rank.
        ranked = [(-tags[t].pushed, t) for t in kept - pinned]
        if ranked and deleted:
            assert min((-tags[t].pushed, t) for t in deleted) > max(ranked)
    for decision in plan.delete + plan.keep:
        assert (decision.digest, decision.pushed) == (tags[decision.tag].digest, tags[decision.tag].pushed)
    assert plan.untagged_after == rule.delete_untagged_after


@FAST
@given(rules(), tag_sets, st.randoms(use_true_random=False))
def test_plan_does_not_depend_on_the_order_of_the_tags(
    rule: RetentionRule, tags: dict[str, TagInfo], shuffler: random.Random
) -> None:
    items = list(tags.items())
    shuffler.shuffle(items)
    policy = RetentionPolicy([rule])
    assert policy.plan("app", dict(items)) == policy.plan("app", tags)


# -- durations -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,seconds",
    [("90m", 5400.0), ("36h", 129600.0), ("7d", 604800.0), ("2w", 1209600.0), ("30s", 30.0),
     ("0s", 0.0), ("1.5h", 5400.0), ("0.1h", 360.0), (3600, 3600.0), (0.5, 0.5), (0, 0.0)],
)
def test_parse_duration(text: str | int | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "value,message",
    [
        ("7", "bad duration '7': write a number and a unit, s, m, h, d or w (\"36h\", \"7d\"), or a plain number of seconds"),
        ("7D", "bad duration '7D': write"),
        ("1M", "bad duration '1M': write"),
        ("-1d", "bad duration '-1d': write"),
        (" 7d", "bad duration ' 7d': write"),
        ("7 d", "bad duration '7 d': write"),
        ("1e3s", "bad duration '1e3s': write"),
        (".5h", "bad duration '.5h': write"),
        ("\u0663d", "bad duration '\u0663d': write"),  # an Arabic-Indic 3: a digit, but not 0-9
        ("", "bad duration '': write"),
        ("9" * 400 + "w", "duration '" + "9" * 400 + "w' is too long"),
        (-1, "duration -1 is negative"),
        (-0.5, "duration -0.5 is negative"),
        (math.inf, "duration inf is not a finite number of seconds"),
        (math.nan, "duration nan is not a finite number of seconds"),
        (10 ** 400, "duration " + "1" + "0" * 400 + " is too long"),
        (True, "expected a duration such as \"7d\" or a number of seconds, not True"),
        (None, "expected a duration such as \"7d\" or a number of seconds, not None"),
        ([1], "expected a duration such as \"7d\" or a number of seconds, not [1]"),
    ],
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(RetentionError) as caught:
        parse_duration(value)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize("seconds,text", [(0.0, "0s"), (59.0, "59s"), (90 * 60.0, "90m"), (HOUR, "1h"),
                                          (36 * HOUR, "36h"), (7 * 24 * HOUR, "1w"), (8 * 24 * HOUR, "8d"),
                                          (1.5, "1.5s"), (1e-5, "0.00001s")])
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("seconds", [-1.0, math.inf, math.nan])
def test_format_duration_refuses_what_is_not_a_duration(seconds: float) -> None:
    with pytest.raises(ValueError):
        format_duration(seconds)


@FAST
@given(st.floats(min_value=0, allow_infinity=False, allow_nan=False)
       | st.integers(0, 10 ** 12).map(float))
@example(5e-324)
@example(1.7976931348623157e308)
def test_durations_round_trip(seconds: float) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert re.fullmatch(r"\d+(\.\d+)?[smhdw]", text)


@FAST
@given(st.integers(0, 10 ** 6), st.sampled_from("smhdw"))
def test_unit_durations_read_back_in_canonical_form(number: int, unit: str) -> None:
    seconds = parse_duration(f"{number}{unit}")
    assert seconds == number * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    assert parse_duration(format_duration(seconds)) == seconds


# -- the rules file: validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    "document,message",
    [
        ([], "r.json: expected a table/object at the top"),
        ({}, "r.json: expected a \"retention\" list of rules ([[retention]] in TOML)"),
        ({"retention": {}}, "r.json: \"retention\" must be a list of rules ([[retention]] in TOML)"),
        ({"retention": [], "rules": []}, "r.json: unknown key(s) ['rules']; known: ['retention']"),
        ({"retention": [1]}, "r.json: rule 1: expected a table/object"),
        ({"retention": [{"repositories": ["a"]}, {"repositories": ["b"], "keep": 1}]},
         "r.json: rule 2: unknown key(s) ['keep']; known: "
         "['repositories', 'keep_last', 'keep_tags', 'delete_untagged_after']"),
        ({"retention": [{"keep_last": 1}]},
         "r.json: rule 1: repositories: a rule needs at least one repository glob"),
        ({"retention": [{"repositories": []}]},
         "r.json: rule 1: repositories: a rule needs at least one repository glob"),
        ({"retention": [{"repositories": [""]}]},
         "r.json: rule 1: repositories: expected a non-empty glob for repository name, not ''"),
        ({"retention": [{"repositories": [3]}]}, "r.json: rule 1: repositories: expected a list of globs (strings)"),
        ({"retention": [{"repositories": {"a": 1}}]},
         "r.json: rule 1: repositories: expected a list of globs (strings)"),
        ({"retention": [{"repositories": ["Team/*"]}]},
         "r.json: rule 1: repositories: glob 'Team/*' can never match a repository name: "
         "'T' is not allowed in repository names"),
        ({"retention": [{"repositories": ["{user}/*"]}]},
         "r.json: rule 1: repositories: glob '{user}/*' can never match a repository name: "
         "'{}' are not allowed in repository names"),
        ({"retention": [{"repositories": ["team/[ab"]}]},
         "r.json: rule 1: repositories: glob 'team/[ab': '[' without a matching ']'"),
        ({"retention": [{"repositories": ["a"], "keep_last": -1}]},
         "r.json: rule 1: keep_last: expected 0 or more, not -1"),
        ({"retention": [{"repositories": ["a"], "keep_last": 1.5}]},
         "r.json: rule 1: keep_last: expected a whole number, not 1.5"),
        ({"retention": [{"repositories": ["a"], "keep_last": 10.0}]},
         "r.json: rule 1: keep_last: expected a whole number, not 10.0"),
        ({"retention": [{"repositories": ["a"], "keep_last": True}]},
         "r.json: rule 1: keep_last: expected a whole number, not True"),
        ({"retention": [{"repositories": ["a"], "keep_last": "10"}]},
         "r.json: rule 1: keep_last: expected a whole number, not '10'"),
        ({"retention": [{"repositories": ["a"], "keep_tags": ["v*"]}]},
         "r.json: rule 1: keep_tags has no effect without keep_last (only keep_last deletes tags)"),
        ({"retention": [{"repositories": ["a"], "keep_last": 1, "keep_tags": ["v/*"]}]},
         "r.json: rule 1: keep_tags: glob 'v/*' can never match a tag: '/' is not allowed in tags"),
        ({"retention": [{"repositories": ["a"], "keep_last": 1, "keep_tags": [None]}]},
         "r.json: rule 1: keep_tags: expected a list of globs (strings)"),
        ({"retention": [{"repositories": ["a"], "delete_untagged_after": "7 days"}]},
         "r.json: rule 1: delete_untagged_after: bad duration '7 days': write a number and a unit"),
        ({"retention": [{"repositories": ["a"], "delete_untagged_after": -5}]},
         "r.json: rule 1: delete_untagged_after: duration -5 is negative"),
        ({"retention": [{"repositories": ["a"], "delete_untagged_after": None}]},
         "r.json: rule 1: delete_untagged_after: null is not a value; leave delete_untagged_after out instead"),
        ({"retention": [{"repositories": ["a"], "keep_last": None}]},
         "r.json: rule 1: keep_last: null is not a value; leave keep_last out instead"),
        ({"retention": [{"repositories": None}]},
         "r.json: rule 1: repositories: null is not a value; leave repositories out instead"),
    ],
)
def test_invalid_rules_name_the_file_and_rule(document: Any, message: str) -> None:
    with pytest.raises(RetentionError) as caught:
        RetentionPolicy.from_mapping(document, source="r.json")
    assert str(caught.value).startswith(message)


def test_null_values_are_errors_not_defaults() -> None:
    """``null`` is not "absent": TOML has no null, and a JSON file must mean what its TOML twin means."""
    with pytest.raises(RetentionError):
        RetentionPolicy.from_mapping({"retention": [{"repositories": ["a"], "keep_last": None}]})


def test_a_single_glob_may_be_a_string_and_an_empty_list_is_no_rules() -> None:
    policy = RetentionPolicy.from_mapping(
        {"retention": [{"repositories": "ci/*", "keep_last": 1, "keep_tags": "latest"}]}
    )
    assert policy.rules == (RetentionRule(("ci/*",), keep_last=1, keep_tags=("latest",)),)
    assert RetentionPolicy.from_mapping({"retention": []}).rules == ()


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"repositories": "team/*"}, "repositories: expected a list of globs, not 'team/*'"),
        ({"repositories": ("a",), "keep_last": True}, "keep_last: expected a whole number, not True"),
        ({"repositories": ("a",), "delete_untagged_after": "7d"},
         "delete_untagged_after: expected seconds (parse_duration reads \"7d\"), not '7d'"),
        ({"repositories": ("a",), "delete_untagged_after": math.inf},
         "delete_untagged_after: duration inf is not a finite number of seconds"),
    ],
)
def test_rules_built_in_python_are_checked_too(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(RetentionError) as caught:
        RetentionRule(**kwargs)
    assert str(caught.value) == message


@pytest.mark.parametrize("pushed", [math.nan, math.inf, True, "1"])
def test_tag_info_refuses_push_times_that_cannot_be_ordered(pushed: Any) -> None:
    with pytest.raises(ValueError):
        TagInfo(digest("x"), pushed)


@pytest.mark.parametrize(
    "name,content,message",
    [
        ("r.ini", "[retention]", "r.ini: use a .json or .toml file"),
        ("r.json", '{"retention": [', "r.json: Expecting value: line 1 column 16 (char 15)"),
        ("r.json", '{"retention": [], "retention": []}', "r.json: duplicate key 'retention'"),
        ("r.json", '{"retention": [{"repositories": ["a"], "delete_untagged_after": NaN}]}',
         "r.json: NaN is not a number JSON allows"),
        ("r.json", '{"retention": [{"repositories": ["a"], "delete_untagged_after": 1e400}]}',
         "r.json: rule 1: delete_untagged_after: duration inf is not a finite number of seconds"),
        ("r.json", "[" * 100000 + "]" * 100000, "r.json: nested too deeply"),
        ("r.json", b"\xff\xfe{}", "r.json: cannot read: 'utf-8' codec can't decode byte 0xff"),
        ("r.toml", "[[retention]\n", "r.toml: Expected ']]' at the end of an array declaration (at line 1, column 12)"),
        ("r.toml", "[[retention]]\nrepositories = ['a']\nkeep_last = 1979-05-27\n",
         "r.toml: rule 1: keep_last: expected a whole number, not datetime.date(1979, 5, 27)"),
        ("r.toml", "[[retention]]\nrepositories = ['a']\nkeep_last = 2\nkeep_last = 3\n",
         "r.toml: Cannot overwrite a value (at line 4, column 14)"),
        ("r.toml", "[[retention]]\nrepositories = ['a']\n[[retention]]\nrepositories = ['b']\nkeep = 1\n",
         "r.toml: rule 2: unknown key(s) ['keep']"),
    ],
)
def test_bad_files_are_errors_naming_the_file(tmp_path: Path, name: str, content: str | bytes, message: str) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(RetentionError) as caught:
        RetentionPolicy.from_file(path)
    assert str(caught.value).startswith(str(tmp_path / message))


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(RetentionError) as caught:
        RetentionPolicy.from_file(tmp_path / "absent.toml")
    assert str(caught.value).startswith(f"{tmp_path / 'absent.toml'}: cannot read: ")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
rule_keys = st.sampled_from(["repositories", "keep_last", "keep_tags", "delete_untagged_after", "keep"])


@FAST
@given(json_values | st.fixed_dictionaries({"retention": st.lists(
    st.dictionaries(rule_keys, json_values, max_size=4), max_size=3)}))
def test_any_decoded_document_gives_a_policy_or_a_retention_error(document: Any) -> None:
    try:
        RetentionPolicy.from_mapping(document, source="f")
    except RetentionError as exc:
        assert str(exc).startswith("f: ")


@FAST
@given(st.binary(max_size=80) | st.text(alphabet='[]{}"=,:.0123456789 \nretnionkeap_lsy*', max_size=80),
       st.sampled_from([".json", ".toml"]))
def test_any_file_gives_a_policy_or_a_retention_error(content: bytes | str, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = write(Path(directory), "r" + suffix, content)
        try:
            RetentionPolicy.from_file(path)
        except RetentionError as exc:
            assert str(exc).startswith(str(path) + ": ")


# -- JSON and TOML are one format -----------------------------------------------------------------


def toml_string(text: str) -> str:
    escaped = "".join(
        '\\"' if c == '"' else "\\\\" if c == "\\" else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c
        for c in text
    )
    return f'"{escaped}"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(document: dict[str, Any]) -> str:
    """TOML for a document of strings, numbers, booleans, lists and tables (no null, finite floats)."""
    lines, tables = [], []
    for key, value in document.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            tables.append((key, value))
        else:
            lines.append(f"{toml_string(key)} = {toml_value(value)}")
    for key, items in tables:
        for item in items:
            lines.append(f"[[{toml_string(key)}]]")
            lines.extend(f"{toml_string(k)} = {toml_value(v)}" for k, v in item.items())
    return "\n".join(lines) + "\n"


toml_scalars = (
    st.booleans() | st.integers(-(2 ** 63), 2 ** 63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
)
valid_fields = {
    "repositories": st.lists(st.sampled_from(["*", "ci/*", "a", "team/[ab]?", "x/**"]), min_size=1, max_size=3)
    | st.just("ci/*"),
    "keep_last": st.integers(0, 2 ** 63 - 1),
    "keep_tags": st.lists(st.sampled_from(["latest", "v*", "[!x]*"]), max_size=2) | st.just("stable"),
    "delete_untagged_after": st.sampled_from(["7d", "36h", "1.5h", "0s", 0, 3600])
    | st.floats(0, 1e12) | st.integers(0, 2 ** 63 - 1),
}
invalid_fields = {
    "repositories": st.sampled_from([[], [""], ["Team/*"], ["x/[y"], "[", 3, [1], {"a": "b"}]),
    "keep_last": st.sampled_from([-1, 2.0, True, "3", [1]]),
    "keep_tags": st.sampled_from([["a/b"], [""], 7, [True]]),
    "delete_untagged_after": st.sampled_from(["7", "-1d", "7D", -1, -0.5, False, []]),
    "keep": toml_scalars,
}


@st.composite
def rule_tables(draw: st.DrawFn) -> dict[str, Any]:
    """A rule table; most are valid, some have one key wrong, missing or unknown."""
    rule = {"repositories": draw(valid_fields["repositories"])}
    if draw(st.booleans()):
        rule["keep_last"] = draw(valid_fields["keep_last"])
        if draw(st.booleans()):
            rule["keep_tags"] = draw(valid_fields["keep_tags"])
    if draw(st.booleans()):
        rule["delete_untagged_after"] = draw(valid_fields["delete_untagged_after"])
    if draw(st.integers(0, 4)) == 0:
        key = draw(st.sampled_from(sorted(invalid_fields)))
        rule[key] = draw(invalid_fields[key])
    if draw(st.integers(0, 9)) == 0:
        del rule["repositories"]
    return rule


@FAST
@given(st.fixed_dictionaries({"retention": st.lists(rule_tables(), max_size=4)})
       | st.dictionaries(st.sampled_from(["retention", "rules"]), toml_scalars, max_size=2))
def test_json_and_toml_files_with_the_same_content_are_the_same_policy(document: dict[str, Any]) -> None:
    toml_text = to_toml(document)
    assert tomllib.loads(toml_text) == json.loads(json.dumps(document))  # the two files say the same
    with tempfile.TemporaryDirectory() as directory:
        outcomes: list[RetentionPolicy | str] = []
        for name, text in (("r.json", json.dumps(document)), ("r.toml", toml_text)):
            path = write(Path(directory), name, text)
            try:
                outcomes.append(RetentionPolicy.from_file(path))
            except RetentionError as exc:
                outcomes.append(str(exc).removeprefix(str(path)))
    assert outcomes[0] == outcomes[1]


# -- dry-run text -----------------------------------------------------------------------------------


def test_render_plan_shows_kept_tags_on_request_and_odd_push_times() -> None:
    policy = RetentionPolicy([RetentionRule(("*",), keep_last=1)], source="r.toml")
    plan = policy.plan("app", {"new": TagInfo("sha256:" + "a" * 64, 1e20), "old": TagInfo("sha256:" + "b" * 64)})
    assert render_plan(plan, show_kept=True) == [
        "app: rule 1 of r.toml: repositories [\"*\"], keep_last 1",
        "  keep tag new (sha256:aaaaaaaaaaaa, pushed at 1e+20 (epoch seconds)): within the last 1 by push time (#1)",
        "  delete tag old (sha256:bbbbbbbbbbbb, push time unknown): beyond the last 1 by push time (#2)",
        "  1 tag to delete, 1 kept; untagged manifests: keep",
    ]
    assert render_plan(plan) == [render_plan(plan, show_kept=True)[i] for i in (0, 2, 3)]


def test_render_summary_counts_per_rule_in_rule_order() -> None:
    policy = RetentionPolicy(
        [RetentionRule(("a*",), keep_last=0, delete_untagged_after=90.0), RetentionRule(("b",))], source="r.json"
    )
    tags = infos(x=1, y=2)
    plans = [policy.plan(name, tags) for name in ("b", "a1", "a2", "c", "d")]
    assert render_summary(plans) == [
        "rule 1 of r.json (repositories [\"a*\"], keep_last 0, delete_untagged_after 90s): "
        "2 repositories, 4 tags to delete, 0 kept",
        "rule 2 of r.json (repositories [\"b\"] (deletes nothing)): 1 repository, 0 tags to delete, 2 kept",
        "no rule: 2 repositories left alone",
    ]
    assert render_summary([]) == []
