"""What to mirror: :class:`Mirror` (one upstream below one namespace) and its settings.

A mirror is written ``NAMESPACE=URL`` followed by optional ``,key=value`` settings::

    dockerhub=https://registry-1.docker.io,username=me,password-file=/run/secrets/hub,ttl=10m
    ghcr=https://ghcr.io,budget=50GiB

``--proxy`` (``REGISTRY_PROXY``) takes one such spec and may be repeated; in a ``--config`` file
the same setting is an array of ``[[proxy]]`` tables. ``--proxy-remote-url URL[,key=value...]``
mirrors one upstream for every name (distribution's ``proxy.remoteurl``). :func:`parse_mirror`
is the one parser of the spec form, :meth:`Mirror.from_mapping` of a table; ``OPTIONS``
declares the settings (``serve`` and ``gc`` take them) and :func:`build` makes the
:class:`~.mirrors.Mirrors` they describe.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence, Union
from urllib.parse import urlsplit

from ..errors import NameInvalid
from ..options import Option, duration, source, tables, text
from ..options import ConfigurationError
from ..options import parse_size as parse_bytes
from ..references import parse_name
from ..retention import RetentionError, format_duration
from ..retention import parse_duration as parse_seconds

if TYPE_CHECKING:
    from .mirrors import Mirrors

__all__ = [
    "Mirror",
    "MirrorConfigError",
    "parse_mirror",
    "parse_size",
    "parse_duration",
    "OPTIONS",
    "mirrors_from",
    "build",
    "describe",
    "DEFAULT_TAG_TTL",
    "DEFAULT_FILL_WAIT",
]

#: How long a tag fetched from the upstream is served before it is checked again.
DEFAULT_TAG_TTL = 300.0
#: How long a request waits for another process's fill of a blob before streaming it unstored.
DEFAULT_FILL_WAIT = 60.0
DEFAULT_TIMEOUT = 30.0

_KEYS = ("username", "password-file", "password-env", "ttl", "budget", "timeout", "ca-file", "wait")


class MirrorConfigError(ConfigurationError):
    """A mirror setting that cannot work; the message names the setting and what is wrong."""


def parse_size(text: str) -> int:
    """Bytes from ``512M``, ``50GiB`` or a plain count (powers of 1024): the contrib settings' parser."""
    try:
        return parse_bytes(text, "budget")
    except ConfigurationError as exc:
        raise MirrorConfigError(f"{exc} (write a number with K, M or G, or KiB, MiB, GiB)") from None


def parse_duration(text: str) -> float:
    """Seconds from ``300``, ``90s``, ``10m``, ``6h``, ``7d`` or ``2w``: the retention rules' parser."""
    text = text.strip()
    try:
        # The retention parser takes a plain number of seconds as a number, not as text.
        plain = re.fullmatch(r"[+-]?[0-9]+(\.[0-9]*)?", text) is not None
        return parse_seconds(float(text) if plain else text)
    except RetentionError as exc:
        raise MirrorConfigError(str(exc)) from None


def _check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise MirrorConfigError(f"upstream {url!r}: expected http(s)://host[:port]")
    try:
        parts.port
    except ValueError:
        raise MirrorConfigError(f"upstream {url!r}: invalid port") from None
    if parts.path.strip("/") or parts.query or parts.fragment or parts.username or parts.password:
        raise MirrorConfigError(f"upstream {url!r}: give the registry's origin only, without a path "
                                "or credentials (use username= and password-file=)")
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Mirror:
    """One upstream registry mirrored below ``namespace`` (``""``: every name).

    ``dockerhub/library/alpine`` on this registry is ``library/alpine`` on the upstream of the
    namespace ``dockerhub``. ``tag_ttl`` is how long a tag is served before the upstream is
    asked again; ``budget`` (bytes) is the size the namespace's blobs are pruned to, least
    recently pulled first (``None``: no limit); ``fill_wait`` is how long a request waits for
    another process's fill of a blob before streaming it from the upstream unstored.
    """

    namespace: str
    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tag_ttl: float = DEFAULT_TAG_TTL
    budget: int | None = None
    timeout: float = DEFAULT_TIMEOUT
    ca_file: str | None = None
    fill_wait: float = DEFAULT_FILL_WAIT

    def __post_init__(self) -> None:
        if self.namespace:
            try:
                parse_name(self.namespace)
            except NameInvalid:
                raise MirrorConfigError(f"mirror namespace {self.namespace!r} is not a repository "
                                        "name (lower case, digits, . _ - separators, / between parts)") from None
        object.__setattr__(self, "url", _check_url(self.url))
        if self.password is not None and self.username is None:
            raise MirrorConfigError(f"{self.label}: a password without a username")
        if self.tag_ttl < 0 or self.timeout <= 0 or self.fill_wait < 0:
            raise MirrorConfigError(f"{self.label}: ttl and wait must be 0 or more, timeout more than 0")
        if self.budget is not None and self.budget <= 0:
            raise MirrorConfigError(f"{self.label}: budget must be more than 0")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise MirrorConfigError(f"{self.label}: ca-file {self.ca_file}: no such file")


    @property
    def label(self) -> str:
        """How errors and logs name this mirror."""
        return f"mirror {self.namespace or '(every name)'} of {self.url}"

    @classmethod
    def from_mapping(cls, doc: Mapping[str, object], *, environ: Mapping[str, str] | None = None,
                     defaults: Mapping[str, Any] | None = None) -> "Mirror":
        """A mirror from a configuration table: ``namespace``, ``url`` and the settings of a spec.

        Keys are those of :func:`parse_mirror` (``_`` or ``-`` alike); ``password`` may also be
        given inline. Numbers may be given as numbers. ``defaults`` are :class:`Mirror` fields
        the table's settings override (``--proxy-ttl``, ``--proxy-budget``).
        """
        if not isinstance(doc, Mapping):
            raise MirrorConfigError("a mirror must be a table (namespace, url and its settings)")
        settings = {str(k).replace("_", "-"): v for k, v in doc.items()}
        namespace = settings.get("namespace", "")
        if not isinstance(namespace, str):
            raise MirrorConfigError("a mirror's namespace must be a string")
        label = f"mirror {namespace or '(every name)'}"
        unknown = set(settings) - {"namespace", "url", "password", *_KEYS}
        if unknown:
            raise MirrorConfigError(f"{label}: unknown mirror settings: {', '.join(sorted(unknown))}")
        if not isinstance(settings.get("url"), str):
            raise MirrorConfigError(f"{label}: a mirror needs a url")
        password = settings.get("password")
        if password is not None and not isinstance(password, str):
            raise MirrorConfigError(f"{label}: a mirror's password must be a string")
        pairs = [(key, str(settings[key])) for key in _KEYS if key in settings]
        return _mirror(namespace, str(settings["url"]), pairs, password, environ, label, defaults)


def _setting(label: str, key: str, value: str, environ: Mapping[str, str] | None) -> tuple[str, object]:
    """The :class:`Mirror` field and value that one ``key=value`` setting gives."""
    env = os.environ if environ is None else environ
    if key == "username":
        return "username", value
    if key == "password-file":
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise MirrorConfigError(_named(label, f"password-file {value}: {exc.strerror}")) from None
        return "password", text.splitlines()[0] if text else ""
    if key == "password-env":
        if value not in env:
            raise MirrorConfigError(_named(label, f"password-env {value} is not set"))
        return "password", env[value]
    try:
        if key in ("ttl", "timeout", "wait"):
            return {"ttl": "tag_ttl", "timeout": "timeout", "wait": "fill_wait"}[key], parse_duration(value)
        if key == "budget":
            return "budget", parse_size(value)  # its message starts with "budget:"
    except MirrorConfigError as exc:
        raise MirrorConfigError(_named(label, str(exc) if key == "budget" else f"{key}: {exc}")) from None
    if key == "ca-file":
        return "ca_file", value
    raise MirrorConfigError(_named(label, f"unknown mirror setting {key!r}; known: {', '.join(_KEYS)}"))


def _named(label: str, message: str) -> str:
    return f"{label}: {message}" if label else message


def _mirror(namespace: str, url: str, settings: Sequence[tuple[str, str]], password: str | None,
            environ: Mapping[str, str] | None, label: str,
            defaults: Mapping[str, Any] | None = None) -> Mirror:
    """A mirror from its namespace, URL and settings over ``defaults`` (:class:`Mirror` fields),
    each checked; ``label`` names it in errors (``""``: the caller names it)."""
    fields: dict[str, Any] = dict(defaults or {})
    if password is not None:
        fields["password"] = password
    for key, value in settings:
        name, parsed = _setting(label, key, value, environ)
        fields[name] = parsed
    try:
        return Mirror(namespace, url, **fields)
    except MirrorConfigError as exc:
        raise MirrorConfigError(_named(label, str(exc))) from None


def parse_mirror(text: str, *, namespace: str | None = None, defaults: Mapping[str, Any] | None = None,
                 environ: Mapping[str, str] | None = None, label: str | None = None) -> Mirror:
    """A mirror from ``NAMESPACE=URL[,key=value...]`` (or ``URL[,...]`` with ``namespace`` given).

    Settings: ``username``, ``password-file`` (the password is its first line), ``password-env``
    (the name of an environment variable holding it), ``ttl`` and ``timeout`` and ``wait``
    (durations: ``300``, ``10m``), ``budget`` (a size: ``50GiB``), ``ca-file``. ``defaults``
    are :class:`Mirror` fields the settings override (``--proxy-ttl``, ``--proxy-budget``).
    Errors start with ``label`` (default ``mirror '<text>'``; ``""``: none, the caller names it).
    """
    label = f"mirror {text!r}" if label is None else label
    head, *settings = text.strip().split(",")
    if namespace is None:
        name, equals, url = head.partition("=")
        if not equals or not name:
            raise MirrorConfigError(_named(label, "expected NAMESPACE=URL[,key=value...]"))
        namespace = name.strip().strip("/")
    else:
        url = head
    pairs: list[tuple[str, str]] = []
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals:
            raise MirrorConfigError(_named(label, f"setting {setting!r} is not key=value"))
        pairs.append((key.strip().lower(), value.strip()))
    return _mirror(namespace, url.strip(), pairs, None, environ, label, defaults)


# -- the settings of serve and gc --------------------------------------------------------------


def _spec(text: str) -> str:
    """``--proxy``: a spec that :func:`parse_mirror` reads (checked now, built with the defaults later)."""
    parse_mirror(text, label="")
    return text.strip()


def _remote(text: str) -> str:
    """``--proxy-remote-url``: ``URL[,key=value...]``, checked as :func:`parse_mirror` reads it."""
    parse_mirror(text, namespace="", label="")
    return text.strip()


def _table(doc: Mapping[str, object]) -> dict[str, object]:
    """A ``[[proxy]]`` table, checked as :meth:`Mirror.from_mapping` reads it."""
    Mirror.from_mapping(doc)
    return dict(doc)


def _budget(text: str) -> int:
    """``--proxy-budget``: a size (the message is the spec's, without its ``budget:``)."""
    try:
        return parse_size(text)
    except MirrorConfigError as exc:
        raise MirrorConfigError(str(exc).removeprefix("budget: ")) from None


#: A mirror as a setting holds it: a ``--proxy`` spec, or a configuration file's table.
MirrorSetting = Union[str, Mapping[str, object]]

_GROUP = "pull-through cache"
_SPEC = "NAMESPACE=URL[,key=value...]"

OPTIONS = (
    Option("proxy", tables(_table, toml="table", text=_spec, metavar=_SPEC,
                           describe=f"tables ([[proxy]]) with namespace, url and the settings as keys; "
                                    f"as text, {_SPEC}"),
           "mirror the registry at URL below NAMESPACE, read-only there; settings: "
           + ", ".join(_KEYS) + " (docs/mirroring.rst)", repeatable=True, default=(),
           group=_GROUP, default_text="none"),
    Option("proxy-remote-url", text(_remote, "URL[,key=value...]", "URL[,key=value...]"),
           "mirror the registry at URL for every name outside the --proxy namespaces (nothing "
           "can be pushed then); the settings of --proxy", group=_GROUP),
    Option("proxy-ttl", duration(), "how long a tag is served before its upstream is asked again: "
           "each mirror's ttl unless it sets one", default=DEFAULT_TAG_TTL,
           default_text=format_duration(DEFAULT_TAG_TTL), group=_GROUP),
    Option("proxy-budget", text(_budget, "a size in bytes, or with K, M, G (KiB, MiB, GiB)", "SIZE"),
           "the size each mirror's blobs are pruned to by gc, least recently pulled first: each "
           "mirror's budget unless it sets one", group=_GROUP, default_text="no limit"),
)


def mirrors_from(namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> list[Mirror]:
    """The mirrors the settings describe: ``--proxy`` specs or ``[[proxy]]`` tables, then
    ``--proxy-remote-url``, over the ``--proxy-ttl``/``--proxy-budget`` defaults.

    :class:`MirrorConfigError` (a ``ValueError``) names what is wrong: a namespace mirrored twice.
    """
    defaults: dict[str, Any] = {"tag_ttl": namespace.proxy_ttl}
    if namespace.proxy_budget is not None:
        defaults["budget"] = namespace.proxy_budget
    items: Sequence[MirrorSetting] = namespace.proxy
    found: list[tuple[Mirror, str]] = []
    for item in items:
        if isinstance(item, str):
            mirror = parse_mirror(item, defaults=defaults, environ=environ)
        else:
            mirror = Mirror.from_mapping(item, defaults=defaults, environ=environ)
        found.append((mirror, source(namespace, "proxy")))
    if namespace.proxy_remote_url:
        found.append((parse_mirror(namespace.proxy_remote_url, namespace="", defaults=defaults,
                                   environ=environ), source(namespace, "proxy_remote_url")))
    seen: dict[str, str] = {}
    for mirror, where in found:
        if mirror.namespace in seen:
            both = where if seen[mirror.namespace] == where else f"{seen[mirror.namespace]} and {where}"
            raise MirrorConfigError(f"{both}: namespace {mirror.namespace or '(every name)'} is mirrored twice")
        seen[mirror.namespace] = where
    return [mirror for mirror, _ in found]


def build(namespace: argparse.Namespace) -> "Mirrors | None":
    """The :class:`~.mirrors.Mirrors` for ``Registry(mirrors=...)``, or ``None`` without any."""
    from .mirrors import Mirrors

    mirrors = mirrors_from(namespace)
    return Mirrors(mirrors) if mirrors else None


def describe(mirrors: Sequence[Mirror]) -> str:
    """The mirrors in one line for ``serve``'s start: ``dockerhub/ -> https://... (ttl 5m)``."""
    if not mirrors:
        return "none"
    parts = []
    for mirror in sorted(mirrors, key=lambda m: (not m.namespace, m.namespace)):
        where = (f"{mirror.namespace}/" if mirror.namespace
                 else "every other name" if len(mirrors) > 1 else "every name")
        settings = [f"ttl {format_duration(mirror.tag_ttl)}"]
        if mirror.budget is not None:
            settings.append(f"budget {_size(mirror.budget)}")
        if mirror.username:
            settings.append(f"as {mirror.username}")
        parts.append(f"{where} -> {mirror.url} ({', '.join(settings)})")
    return "; ".join(parts) + ", read-only"


def _size(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"
