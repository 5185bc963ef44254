"""Access policies: who may pull, push and delete which repositories, and list the catalog.

Two implementations of :class:`~docker_registry_wsgi.auth.base.AccessPolicy`:

- :class:`CallablePolicy` adapts a function ``(identity, access) -> actions or bool``;
- :class:`RulePolicy` is a list of rules (repository globs, users and groups, actions) plus an
  anonymous-pull option, loadable from a small JSON, TOML or INI file for the command line.

Identities are user names (what :class:`~docker_registry_wsgi.auth.htpasswd.HtpasswdFile`
returns), or objects with a ``name``/``username`` attribute; ``None`` is anonymous.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from dataclasses import dataclass, field
from fnmatch import translate
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence, Union

from ..tomlfiles import toml_loads
from .base import DELETE, PULL, PUSH, Access

__all__ = ["CallablePolicy", "Rule", "RulePolicy", "PolicyError", "identity_name", "ALL_ACTIONS"]

ALL_ACTIONS = frozenset({PULL, PUSH, DELETE})
_ANY_USER = "*"
_GROUP_PREFIX = "@"

PolicyFunction = Callable[[object, Access], Union[bool, Iterable[str], None]]


class PolicyError(ValueError):
    """A rules file or rule that cannot be used; the message names the place."""


def identity_name(identity: object) -> str | None:
    """The user name of an identity: the string itself, or its ``name``/``username``/``subject``."""
    if identity is None or isinstance(identity, str):
        return identity
    for attribute in ("name", "username", "subject"):
        value = getattr(identity, attribute, None)
        if isinstance(value, str):
            return value
    return str(identity)


class CallablePolicy:
    """Adapt ``function(identity, access)`` to :class:`AccessPolicy`.

    The function returns the actions it allows (any iterable; intersected with those asked
    for), or ``True`` (everything asked) / ``False`` or ``None`` (nothing).
    """

    def __init__(self, function: PolicyFunction) -> None:
        self.function = function

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        result = self.function(identity, access)
        if result is True:
            return access.actions
        if not result:
            return frozenset()
        return frozenset(result) & access.actions


def _compile_glob(pattern: str) -> re.Pattern[str]:
    return re.compile(translate(pattern))


def _escape_glob(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


@dataclass(frozen=True)
class Rule:
    """Grant ``actions`` on repositories matching any of ``repositories`` to ``users``.

    ``repositories`` are shell globs (``*`` also crosses ``/``, so ``team/*`` covers
    ``team/a/b``); ``{user}`` in a glob stands for the caller's user name. ``users`` holds user
    names, ``@group`` names and ``*`` for any authenticated user. ``actions`` are ``pull``,
    ``push``, ``delete`` or ``*`` (all three). ``catalog=True`` also grants listing the catalog.
    """

    repositories: tuple[str, ...] = ()
    users: tuple[str, ...] = (_ANY_USER,)
    actions: frozenset[str] = frozenset({PULL})
    catalog: bool = False
    _patterns: tuple[tuple[str, re.Pattern[str] | None], ...] = field(
        default=(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "repositories", tuple(self.repositories))
        object.__setattr__(self, "users", tuple(self.users))
        actions = frozenset(self.actions)
        if "*" in actions:
            actions = (actions - {"*"}) | ALL_ACTIONS
        unknown = actions - ALL_ACTIONS
        if unknown:
            raise PolicyError(f"unknown action(s) {sorted(unknown)}; use pull, push, delete or *")
        object.__setattr__(self, "actions", actions)
        if not self.users:
            raise PolicyError("a rule needs at least one user, @group or *")
        patterns = tuple(
            (p, None if "{user}" in p else _compile_glob(p)) for p in self.repositories
        )
        object.__setattr__(self, "_patterns", patterns)

    def applies_to(self, user: str, groups: Mapping[str, frozenset[str]]) -> bool:
        """Whether this rule names ``user`` (directly, through a group, or as ``*``)."""
        for principal in self.users:
            if principal == _ANY_USER or principal == user:
                return True
            if principal.startswith(_GROUP_PREFIX) and user in groups.get(principal[1:], ()):
                return True
        return False

    def matches(self, repository: str, user: str) -> bool:
        """Whether ``repository`` matches one of the globs, ``{user}`` replaced by ``user``."""
        for pattern, compiled in self._patterns:
            if compiled is None:
                compiled = _compile_glob(pattern.replace("{user}", _escape_glob(user)))
            if compiled.fullmatch(repository):
                return True
        return False


class RulePolicy:
    """A rule list: the union of what every rule naming the caller grants.

    Anonymous callers get ``pull`` on repositories matching ``anonymous_pull`` (``True`` for
    all) and the catalog when ``anonymous_catalog`` is set; nothing else. There are no deny
    rules: what no rule grants is refused.
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        groups: Mapping[str, Iterable[str]] | None = None,
        anonymous_pull: bool | Sequence[str] = False,
        anonymous_catalog: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self.groups = {name: frozenset(members) for name, members in (groups or {}).items()}
        for rule in self.rules:
            for principal in rule.users:
                if principal.startswith(_GROUP_PREFIX) and principal[1:] not in self.groups:
                    raise PolicyError(f"rule names group {principal!r}, which is not defined")
        if anonymous_pull is True:
            self.anonymous_pull: tuple[re.Pattern[str], ...] = (_compile_glob("*"),)
        elif anonymous_pull is False:
            self.anonymous_pull = ()
        else:
            self.anonymous_pull = tuple(_compile_glob(p) for p in anonymous_pull)
        self.anonymous_catalog = anonymous_catalog

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        user = identity_name(identity)
        if access.type == "registry" and access.name == "catalog":
            if user is None:
                allowed = self.anonymous_catalog
            else:
                allowed = any(r.catalog and r.applies_to(user, self.groups) for r in self.rules)
            return access.actions if allowed else frozenset()
        if access.type != "repository":
            return frozenset()
        if user is None:
            if any(p.fullmatch(access.name) for p in self.anonymous_pull):
                return access.actions & {PULL}
            return frozenset()
        actions: set[str] = set()
        for rule in self.rules:
            if rule.applies_to(user, self.groups) and rule.matches(access.name, user):
                actions |= rule.actions
        return access.actions & actions

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, source: str = "rules") -> "RulePolicy":
        """Build from the decoded document (see docs/auth-policy.rst for the format)."""
        if not isinstance(data, Mapping):
            raise PolicyError(f"{source}: expected a table/object at the top")
        known = {"rules", "groups", "anonymous_pull", "anonymous_catalog"}
        extra = set(data) - known
        if extra:
            raise PolicyError(f"{source}: unknown key(s) {sorted(extra)}; known: {sorted(known)}")
        rules = []
        for index, item in enumerate(data.get("rules", [])):
            where = f"{source}: rule {index + 1}"
            if not isinstance(item, Mapping):
                raise PolicyError(f"{where}: expected a table/object")
            extra = set(item) - {"repositories", "users", "actions", "catalog"}
            if extra:
                raise PolicyError(f"{where}: unknown key(s) {sorted(extra)}")
            try:
                rules.append(
                    Rule(
                        repositories=_strings(item.get("repositories", []), where),
                        users=_strings(item.get("users", [_ANY_USER]), where),
                        actions=frozenset(_strings(item.get("actions", [PULL]), where)),
                        catalog=_boolean(item.get("catalog", False), where),
                    )
                )
            except PolicyError as exc:
                raise PolicyError(f"{where}: {exc}") from None
        groups = data.get("groups", {})
        if not isinstance(groups, Mapping):
            raise PolicyError(f"{source}: groups must map names to lists of users")
        anonymous = data.get("anonymous_pull", False)
        if not isinstance(anonymous, bool):
            anonymous = _strings(anonymous, f"{source}: anonymous_pull")
        try:
            return cls(
                rules,
                groups={name: _strings(members, f"{source}: group {name}") for name, members in groups.items()},
                anonymous_pull=anonymous,
                anonymous_catalog=_boolean(data.get("anonymous_catalog", False), source),
            )
        except PolicyError as exc:
            raise PolicyError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> "RulePolicy":
        """Load a ``.json``, ``.toml`` or ``.ini``/``.cfg`` rules file."""
        file = Path(path)
        try:
            text = file.read_text("utf-8")
        except (OSError, UnicodeError) as exc:
            raise PolicyError(f"{file}: cannot read: {exc}") from None
        suffix = file.suffix.lower()
        if suffix not in (".json", ".toml", ".ini", ".cfg", ".conf"):
            raise PolicyError(f"{file}: use a .json, .toml or .ini file")
        try:
            if suffix == ".json":
                data = json.loads(text)
            elif suffix == ".toml":
                data = toml_loads(text)
            else:
                data = _from_ini(text)
        except (ValueError, configparser.Error) as exc:  # PolicyError is a ValueError too
            raise PolicyError(f"{file}: {exc}") from None
        return cls.from_mapping(data, source=str(file))


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: expected a list of non-empty strings")
    return tuple(value)


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: expected true or false, not {value!r}")
    return value


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[,\s]+", value.strip()) if part]


def _from_ini(text: str) -> dict[str, Any]:
    """INI form: ``[policy]`` options, ``[groups]`` members, one ``[rule NAME]`` per rule."""
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(text)
    data: dict[str, Any] = {"rules": []}
    for section in parser.sections():
        options = dict(parser.items(section))
        if section == "policy":
            for key, value in options.items():
                if key == "anonymous_pull":
                    lowered = value.strip().lower()
                    data[key] = (
                        lowered in ("true", "yes", "1", "on")
                        if lowered in ("true", "yes", "1", "on", "false", "no", "0", "off")
                        else _split(value)
                    )
                elif key == "anonymous_catalog":
                    data[key] = parser.getboolean(section, key)
                else:
                    data[key] = value
        elif section == "groups":
            data["groups"] = {name: _split(members) for name, members in options.items()}
        elif section.startswith("rule"):
            rule: dict[str, Any] = {}
            for key, value in options.items():
                rule[key] = parser.getboolean(section, key) if key == "catalog" else _split(value)
            data["rules"].append(rule)
        else:
            raise PolicyError(f"unknown section [{section}]; use [policy], [groups], [rule NAME]")
    return data
