"""Retention policies: which tags the garbage collector deletes, and when untagged manifests may go.

A :class:`RetentionPolicy` is an ordered list of :class:`RetentionRule` (repository globs,
``keep_last``, ``keep_tags``, ``delete_untagged_after``), loadable from a JSON or TOML file in
the style of the access rules (:mod:`docker_registry_wsgi.auth.policy`). It is pure: given a
repository's tags and their push times, :meth:`RetentionPolicy.plan` says which tags to delete
and why; the collector does the deleting, and keeps whatever a kept tag or a referrer needs.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from fnmatch import translate
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from .tomlfiles import toml_loads

__all__ = [
    "RetentionError",
    "RetentionRule",
    "RetentionPolicy",
    "TagInfo",
    "TagDecision",
    "RepositoryPlan",
    "parse_duration",
    "format_duration",
    "render_plan",
    "render_summary",
]

_RULE_KEYS = ("repositories", "keep_last", "keep_tags", "delete_untagged_after")
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([smhdw])")
# Characters a glob may use outside [...] sets: those of the names it is matched against (the
# grammars in references.py) and the glob operators * and ?.
_REPOSITORY_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789._-/*?")
_TAG_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-*?"
)
_BRACKET_SET = re.compile(r"\[!?\]?[^\]]*\]")


class RetentionError(ValueError):
    """A retention rules file or rule that cannot be used; the message names the place."""


def parse_duration(value: object) -> float:
    """Seconds from ``"90m"``, ``"36h"``, ``"7d"``, ``"2w"``, ``"30s"`` or a number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RetentionError(f"expected a duration such as \"7d\" or a number of seconds, not {value!r}")
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise RetentionError(
                f"bad duration {value!r}: write a number and a unit, s, m, h, d or w (\"36h\", \"7d\"), "
                "or a plain number of seconds"
            )
        try:
            seconds = float(Fraction(match.group(1)) * _UNITS[match.group(2)])
        except OverflowError:
            raise RetentionError(f"duration {value!r} is too long") from None
    else:
        try:
            seconds = float(value)
        except OverflowError:
            raise RetentionError(f"duration {value!r} is too long") from None
        if not math.isfinite(seconds):
            raise RetentionError(f"duration {value!r} is not a finite number of seconds")
    if seconds < 0:
        raise RetentionError(f"duration {value!r} is negative")
    return seconds


def format_duration(seconds: float) -> str:
    """Text :func:`parse_duration` reads back as exactly ``seconds``, in the largest unit that divides it.

    ``604800.0`` is ``"1w"``, ``5400.0`` is ``"90m"``, ``1.5`` is ``"1.5s"``.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"not a duration: {seconds!r}")
    if seconds == int(seconds):
        whole = int(seconds)
        for unit, size in _UNITS.items():
            if whole % size == 0 and (whole or unit == "s"):
                return f"{whole // size}{unit}"
    # repr is the shortest decimal that reads back as the same float; "f" writes it without exponent.
    return f"{Decimal(repr(seconds)):f}s"


def _check_glob(pattern: object, allowed: frozenset[str], what: str) -> str:
    if not isinstance(pattern, str) or not pattern:
        raise RetentionError(f"expected a non-empty glob for {what}, not {pattern!r}")
    outside = _BRACKET_SET.sub("", pattern)
    if "[" in outside or "]" in outside:
        raise RetentionError(f"glob {pattern!r}: '[' without a matching ']'")
    bad = sorted(set(outside) - allowed)
    if bad:
        raise RetentionError(
            f"glob {pattern!r} can never match a {what}: {''.join(bad)!r} "
            f"{'is' if len(bad) == 1 else 'are'} not allowed in {what}s"
        )
    return pattern


def _compile(pattern: str) -> re.Pattern[str]:
    # The access rules' glob semantics (auth/policy.py): fnmatch, so * also crosses "/".
    return re.compile(translate(pattern))


@dataclass(frozen=True)
class RetentionRule:
    """Retention for the repositories matching any of ``repositories`` (shell globs).

    ``keep_last=N`` deletes every tag but the N newest by push time, not counting the tags
    matching a ``keep_tags`` glob, which are always kept; without ``keep_last`` no tag is deleted.
    ``delete_untagged_after`` (seconds) lets untagged manifests older than that go.
    """

    repositories: tuple[str, ...]
    keep_last: int | None = None
    keep_tags: tuple[str, ...] = ()
    delete_untagged_after: float | None = None
    _repository_patterns: tuple[re.Pattern[str], ...] = field(
        default=(), init=False, repr=False, compare=False
    )
    _tag_patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        repositories = _globs(self.repositories, _REPOSITORY_CHARACTERS, "repository name", "repositories")
        if not repositories:
            raise RetentionError("repositories: a rule needs at least one repository glob")
        keep_tags = _globs(self.keep_tags, _TAG_CHARACTERS, "tag", "keep_tags")
        keep_last = self.keep_last
        if keep_last is not None and (isinstance(keep_last, bool) or not isinstance(keep_last, int)):
            raise RetentionError(f"keep_last: expected a whole number, not {keep_last!r}")
        if keep_last is not None and keep_last < 0:
            raise RetentionError(f"keep_last: expected 0 or more, not {keep_last}")
        if keep_tags and keep_last is None:
            raise RetentionError(
                "keep_tags has no effect without keep_last (only keep_last deletes tags)"
            )
        after = self.delete_untagged_after
        if after is not None:
            if isinstance(after, bool) or not isinstance(after, (int, float)):
                raise RetentionError(
                    f"delete_untagged_after: expected seconds (parse_duration reads \"7d\"), not {after!r}"
                )
            try:
                after = parse_duration(after)
            except RetentionError as exc:
                raise RetentionError(f"delete_untagged_after: {exc}") from None
        object.__setattr__(self, "repositories", repositories)
        object.__setattr__(self, "keep_tags", keep_tags)
        object.__setattr__(self, "delete_untagged_after", after)
        object.__setattr__(self, "_repository_patterns", tuple(_compile(p) for p in repositories))
        object.__setattr__(self, "_tag_patterns", tuple((p, _compile(p)) for p in keep_tags))

    def matches(self, repository: str) -> bool:
        """Whether ``repository`` matches one of the globs (the whole name, ``*`` crossing ``/``)."""
        return any(pattern.fullmatch(repository) for pattern in self._repository_patterns)

    def pinned_by(self, tag: str) -> str | None:
        """The first ``keep_tags`` glob that ``tag`` matches (case-sensitively), if any."""
        for text, pattern in self._tag_patterns:
            if pattern.fullmatch(tag):
                return text
        return None

    def describe(self) -> str:
        """The rule as one line of text, in the file's terms."""
        parts = [f"repositories {json.dumps(list(self.repositories))}"]
        if self.keep_last is not None:
            parts.append(f"keep_last {self.keep_last}")
        if self.keep_tags:
            parts.append(f"keep_tags {json.dumps(list(self.keep_tags))}")
        if self.delete_untagged_after is not None:
            parts.append(f"delete_untagged_after {format_duration(self.delete_untagged_after)}")
        text = ", ".join(parts)
        return text if len(parts) > 1 else text + " (deletes nothing)"


@dataclass(frozen=True)
class TagInfo:
    """What retention needs of a tag: the digest it points to and its push time (epoch seconds).

    Tags written before push times were recorded have no ``"pushed"``: pass ``0.0`` (oldest).
    """

    digest: str
    pushed: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.pushed, bool) or not isinstance(self.pushed, (int, float)) \
                or not math.isfinite(self.pushed):
            raise ValueError(f"pushed must be a finite number of epoch seconds, not {self.pushed!r}")


@dataclass(frozen=True)
class TagDecision:
    """One tag's fate: kept or deleted, and the reason, in words."""

    tag: str
    digest: str
    pushed: float
    keep: bool
    reason: str


@dataclass(frozen=True)
class RepositoryPlan:
    """What retention does to one repository.

    ``rule_number`` (1-based, as in error messages) and ``rule`` are the first rule matching the
    repository, or ``None`` (nothing is deleted). ``delete`` and ``keep`` partition the tags,
    each newest first. ``untagged_after`` is the age in seconds after which untagged manifests
    may be deleted, ``None`` to keep them.
    """

    repository: str
    source: str
    rule_number: int | None
    rule: RetentionRule | None
    delete: tuple[TagDecision, ...]
    keep: tuple[TagDecision, ...]
    untagged_after: float | None

    @property
    def tags_to_delete(self) -> tuple[str, ...]:
        """The names of the tags to delete, newest first."""
        return tuple(decision.tag for decision in self.delete)


class RetentionPolicy:
    """An ordered rule list: a repository is governed by the first rule whose globs match it.

    A repository no rule matches is left alone. Put specific rules before general ones; a rule
    with only ``repositories`` exempts those repositories from the rules after it.
    """

    def __init__(self, rules: Sequence[RetentionRule] = (), *, source: str = "retention rules") -> None:
        self.rules = tuple(rules)
        self.source = source

    def __repr__(self) -> str:
        return f"RetentionPolicy({list(self.rules)!r}, source={self.source!r})"

    def __eq__(self, other: object) -> bool:
        """Policies are equal when their rules are, wherever they were read from."""
        if not isinstance(other, RetentionPolicy):
            return NotImplemented
        return self.rules == other.rules

    __hash__ = None  # type: ignore[assignment]

    def rule_for(self, repository: str) -> tuple[int, RetentionRule] | None:
        """The first rule matching ``repository`` and its 1-based number, or ``None``."""
        for number, rule in enumerate(self.rules, start=1):
            if rule.matches(repository):
                return number, rule
        return None

    def plan(self, repository: str, tags: Mapping[str, TagInfo]) -> RepositoryPlan:
        """Decide each tag of ``repository``: newest first by push time, ties by tag name."""
        ordered = sorted(tags.items(), key=lambda item: (-item[1].pushed, item[0]))
        found = self.rule_for(repository)
        if found is None:
            untouched = tuple(
                TagDecision(tag, info.digest, info.pushed, True, "no retention rule matches the repository")
                for tag, info in ordered
            )
            return RepositoryPlan(repository, self.source, None, None, (), untouched, None)
        number, rule = found
        decisions = []
        counted = 0
        for tag, info in ordered:
            pinned = rule.pinned_by(tag)
            if rule.keep_last is None:
                keep, reason = True, f"rule {number} has no keep_last"
            elif pinned is not None:
                keep, reason = True, f"matches keep_tags {pinned!r}"
            else:
                counted += 1
                keep = counted <= rule.keep_last
                where = "within" if keep else "beyond"
                note = " not counting keep_tags" if rule.keep_tags else ""
                reason = f"{where} the last {rule.keep_last} by push time (#{counted}{note})"
            decisions.append(TagDecision(tag, info.digest, info.pushed, keep, reason))
        return RepositoryPlan(
            repository,
            self.source,
            number,
            rule,
            tuple(d for d in decisions if not d.keep),
            tuple(d for d in decisions if d.keep),
            rule.delete_untagged_after,
        )

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "retention rules") -> "RetentionPolicy":
        """Build from the decoded document ``{"retention": [rule, ...]}`` (docs/retention.rst)."""
        if not isinstance(data, Mapping):
            raise RetentionError(f"{source}: expected a table/object at the top")
        extra = set(data) - {"retention"}
        if extra:
            raise RetentionError(f"{source}: unknown key(s) {_names(extra)}; known: ['retention']")
        if "retention" not in data:
            raise RetentionError(f"{source}: expected a \"retention\" list of rules ([[retention]] in TOML)")
        items = data["retention"]
        if not isinstance(items, list):
            raise RetentionError(f"{source}: \"retention\" must be a list of rules ([[retention]] in TOML)")
        rules = []
        for number, item in enumerate(items, start=1):
            where = f"{source}: rule {number}"
            if not isinstance(item, Mapping):
                raise RetentionError(f"{where}: expected a table/object")
            extra = set(item) - set(_RULE_KEYS)
            if extra:
                raise RetentionError(f"{where}: unknown key(s) {_names(extra)}; known: {list(_RULE_KEYS)}")
            try:
                if "repositories" not in item:
                    raise RetentionError("repositories: a rule needs at least one repository glob")
                for key in _RULE_KEYS:
                    if key in item and item[key] is None:  # JSON null; TOML has none
                        raise RetentionError(f"{key}: null is not a value; leave {key} out instead")
                after = None
                if "delete_untagged_after" in item:
                    try:
                        after = parse_duration(item["delete_untagged_after"])
                    except RetentionError as exc:
                        raise RetentionError(f"delete_untagged_after: {exc}") from None
                rules.append(
                    RetentionRule(
                        repositories=_strings(item["repositories"], "repositories"),
                        keep_last=item.get("keep_last"),
                        keep_tags=_strings(item.get("keep_tags", []), "keep_tags"),
                        delete_untagged_after=after,
                    )
                )
            except RetentionError as exc:
                raise RetentionError(f"{where}: {exc}") from None
        return cls(rules, source=source)

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "RetentionPolicy":
        """Load a ``.json`` or ``.toml`` retention rules file."""
        file = Path(path)
        suffix = file.suffix.lower()
        if suffix not in (".json", ".toml"):
            raise RetentionError(f"{file}: use a .json or .toml file")
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeError) as exc:
            raise RetentionError(f"{file}: cannot read: {exc}") from None
        try:
            if suffix == ".json":
                data = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
            else:
                data = toml_loads(text)
        except RecursionError:
            raise RetentionError(f"{file}: nested too deeply") from None
        except ValueError as exc:  # JSONDecodeError, TOMLDecodeError, RetentionError
            raise RetentionError(f"{file}: {exc}") from None
        return cls.from_mapping(data, source=str(file))


def _names(keys: Iterable[object]) -> list[str]:
    return sorted(str(key) for key in keys)


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RetentionError(f"{key}: expected a list of globs (strings)")
    return tuple(value)


def _globs(value: object, allowed: frozenset[str], what: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise RetentionError(f"{key}: expected a list of globs, not {value!r}")
    try:
        return tuple(_check_glob(pattern, allowed, what) for pattern in value)
    except RetentionError as exc:
        raise RetentionError(f"{key}: {exc}") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise RetentionError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise RetentionError(f"{name} is not a number JSON allows")


def _short(digest: str) -> str:
    algorithm, _, encoded = digest.partition(":")
    return f"{algorithm}:{encoded[:12]}" if encoded else digest[:19]


def _when(pushed: float) -> str:
    if pushed == 0:
        return "push time unknown"
    try:
        moment = datetime.fromtimestamp(pushed, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"pushed at {pushed!r} (epoch seconds)"
    return "pushed " + moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def render_plan(plan: RepositoryPlan, *, show_kept: bool = False) -> list[str]:
    """Dry-run lines for one repository: the deciding rule, each tag to delete and why."""
    if plan.rule is None:
        return [f"{plan.repository}: no retention rule matches; nothing deleted "
                f"({_count(len(plan.keep), 'tag')} kept)"]
    lines = [f"{plan.repository}: rule {plan.rule_number} of {plan.source}: {plan.rule.describe()}"]
    shown = plan.delete + plan.keep if show_kept else plan.delete
    for decision in sorted(shown, key=lambda d: (-d.pushed, d.tag)):
        verb = "keep" if decision.keep else "delete"
        lines.append(f"  {verb} tag {decision.tag} ({_short(decision.digest)}, {_when(decision.pushed)}): "
                     f"{decision.reason}")
    if plan.untagged_after is None:
        untagged = "untagged manifests: keep"
    else:
        untagged = f"untagged manifests: delete after {format_duration(plan.untagged_after)}"
    lines.append(f"  {_count(len(plan.delete), 'tag')} to delete, {len(plan.keep)} kept; {untagged}")
    return lines


def render_summary(plans: Iterable[RepositoryPlan]) -> list[str]:
    """Dry-run lines per rule, in rule order: how many repositories it governs, tags it deletes."""
    by_rule: dict[int, tuple[RetentionRule, str, list[RepositoryPlan]]] = {}
    unmatched = 0
    for plan in plans:
        if plan.rule is None or plan.rule_number is None:
            unmatched += 1
            continue
        by_rule.setdefault(plan.rule_number, (plan.rule, plan.source, []))[2].append(plan)
    lines = []
    for number in sorted(by_rule):
        rule, source, governed = by_rule[number]
        deleted = sum(len(p.delete) for p in governed)
        kept = sum(len(p.keep) for p in governed)
        lines.append(f"rule {number} of {source} ({rule.describe()}): "
                     f"{_count(len(governed), 'repository', 'repositories')}, "
                     f"{_count(deleted, 'tag')} to delete, {kept} kept")
    if unmatched:
        lines.append(f"no rule: {_count(unmatched, 'repository', 'repositories')} left alone")
    return lines


def _count(number: int, singular: str, plural: str | None = None) -> str:
    return f"{number} {singular if number == 1 else (plural or singular + 's')}"
