"""What to mirror: :class:`Mirror` (one upstream below one namespace) and the command-line glue.

A mirror is written ``NAMESPACE=URL`` followed by optional ``,key=value`` settings::

    dockerhub=https://registry-1.docker.io,username=me,password-file=/run/secrets/hub,ttl=10m
    ghcr=https://ghcr.io,budget=50GiB

``--proxy`` takes one such spec and may be repeated; ``--proxy-remote-url URL[,key=value...]``
mirrors one upstream for every name (distribution's ``proxy.remoteurl``). :func:`parse_mirror`
is the one parser of the form; :meth:`Mirror.from_mapping` reads the same settings from a
configuration file's table.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import urlsplit

from ..errors import NameInvalid
from ..options import ConfigurationError
from ..options import parse_size as parse_bytes
from ..references import parse_name
from ..retention import RetentionError
from ..retention import parse_duration as parse_seconds

if TYPE_CHECKING:
    from .mirrors import Mirrors

__all__ = [
    "Mirror",
    "MirrorConfigError",
    "parse_mirror",
    "parse_size",
    "parse_duration",
    "add_arguments",
    "build",
    "DEFAULT_TAG_TTL",
    "DEFAULT_FILL_WAIT",
]

#: How long a tag fetched from the upstream is served before it is checked again.
DEFAULT_TAG_TTL = 300.0
#: How long a request waits for another process's fill of a blob before streaming it unstored.
DEFAULT_FILL_WAIT = 60.0
DEFAULT_TIMEOUT = 30.0

_KEYS = ("username", "password-file", "password-env", "ttl", "budget", "timeout", "ca-file", "wait")


class MirrorConfigError(ValueError):
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
        plain = text.isascii() and text.replace(".", "", 1).isdigit()
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
    def from_mapping(cls, doc: Mapping[str, object], *,
                     environ: Mapping[str, str] | None = None) -> "Mirror":
        """A mirror from a configuration table: ``namespace``, ``url`` and the settings of a spec.

        Keys are those of :func:`parse_mirror` (``_`` or ``-`` alike); ``password`` may also be
        given inline. Numbers may be given as numbers.
        """
        settings = {str(k).replace("_", "-"): v for k, v in doc.items()}
        unknown = set(settings) - {"namespace", "url", "password", *_KEYS}
        if unknown:
            raise MirrorConfigError(f"unknown mirror settings: {', '.join(sorted(unknown))}")
        if not isinstance(settings.get("url"), str):
            raise MirrorConfigError("a mirror needs a url")
        namespace = settings.get("namespace", "")
        if not isinstance(namespace, str):
            raise MirrorConfigError("a mirror's namespace must be a string")
        password = settings.get("password")
        if password is not None and not isinstance(password, str):
            raise MirrorConfigError("a mirror's password must be a string")
        pairs = [(key, str(settings[key])) for key in _KEYS if key in settings]
        return _mirror(namespace, str(settings["url"]), pairs, password, environ,
                       f"mirror {namespace or '(every name)'}")


def _setting(label: str, key: str, value: str, environ: Mapping[str, str] | None) -> tuple[str, object]:
    """The :class:`Mirror` field and value that one ``key=value`` setting gives."""
    env = os.environ if environ is None else environ
    if key == "username":
        return "username", value
    if key == "password-file":
        try:
            text = Path(value).read_text()
        except OSError as exc:
            raise MirrorConfigError(f"{label}: password-file {value}: {exc.strerror}") from None
        return "password", text.splitlines()[0] if text else ""
    if key == "password-env":
        if value not in env:
            raise MirrorConfigError(f"{label}: password-env {value} is not set")
        return "password", env[value]
    if key in ("ttl", "timeout", "wait"):
        return {"ttl": "tag_ttl", "timeout": "timeout", "wait": "fill_wait"}[key], parse_duration(value)
    if key == "budget":
        return "budget", parse_size(value)
    if key == "ca-file":
        return "ca_file", value
    raise MirrorConfigError(f"{label}: unknown mirror setting {key!r}; known: {', '.join(_KEYS)}")


def _mirror(namespace: str, url: str, settings: Sequence[tuple[str, str]], password: str | None,
            environ: Mapping[str, str] | None, label: str) -> Mirror:
    """A mirror from its namespace, URL and settings, each checked; ``label`` names it in errors."""
    fields: dict[str, Any] = {} if password is None else {"password": password}
    for key, value in settings:
        name, parsed = _setting(label, key, value, environ)
        fields[name] = parsed
    try:
        return Mirror(namespace, url, **fields)
    except MirrorConfigError as exc:
        raise MirrorConfigError(f"{label}: {exc}") from None


def parse_mirror(text: str, *, namespace: str | None = None, defaults: Mapping[str, str] | None = None,
                 environ: Mapping[str, str] | None = None) -> Mirror:
    """A mirror from ``NAMESPACE=URL[,key=value...]`` (or ``URL[,...]`` with ``namespace`` given).

    Settings: ``username``, ``password-file`` (the password is its first line), ``password-env``
    (the name of an environment variable holding it), ``ttl`` and ``timeout`` and ``wait``
    (durations: ``300``, ``10m``), ``budget`` (a size: ``50GiB``), ``ca-file``. ``defaults``
    are settings applied first (the ``--proxy-ttl``/``--proxy-budget`` options).
    """
    head, *settings = text.strip().split(",")
    if namespace is None:
        name, equals, url = head.partition("=")
        if not equals or not name:
            raise MirrorConfigError(f"mirror {text!r}: expected NAMESPACE=URL[,key=value...]")
        namespace = name.strip().strip("/")
    else:
        url = head
    pairs: list[tuple[str, str]] = list((defaults or {}).items())
    for setting in settings:
        key, equals, value = setting.partition("=")
        if not equals:
            raise MirrorConfigError(f"mirror {text!r}: setting {setting!r} is not key=value")
        pairs.append((key.strip().lower(), value.strip()))
    return _mirror(namespace, url.strip(), pairs, None, environ, f"mirror {text!r}")



def add_arguments(parser: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """The pull-through cache's options; defaults from ``REGISTRY_PROXY*`` variables."""
    env = os.environ if env is None else env
    group = parser.add_argument_group(
        "pull-through cache", "mirror upstream registries below namespaces (see docs/mirroring.rst)")
    group.add_argument(
        "--proxy", action="append", default=None, metavar="NAMESPACE=URL[,key=value...]",
        help="mirror the registry at URL below NAMESPACE (read-only there); repeatable; settings: "
             "username, password-file, password-env, ttl, budget, timeout, ca-file, wait "
             "[env REGISTRY_PROXY, several separated by spaces]")
    group.add_argument(
        "--proxy-remote-url", default=env.get("REGISTRY_PROXY_REMOTE_URL") or None,
        metavar="URL[,key=value...]",
        help="mirror the registry at URL for every name outside the --proxy namespaces "
             "(nothing can be pushed then) [env REGISTRY_PROXY_REMOTE_URL]")
    group.add_argument(
        "--proxy-ttl", default=env.get("REGISTRY_PROXY_TTL") or None, metavar="DURATION",
        help=f"default of the ttl setting: how long a tag is served before the upstream is asked "
             f"again (default {DEFAULT_TAG_TTL:g}s) [env REGISTRY_PROXY_TTL]")
    group.add_argument(
        "--proxy-budget", default=env.get("REGISTRY_PROXY_BUDGET") or None, metavar="SIZE",
        help="default of the budget setting: the size each mirror's blobs are pruned to "
             "[env REGISTRY_PROXY_BUDGET]")
    spec_env = env.get("REGISTRY_PROXY", "")
    parser.set_defaults(_proxy_env=spec_env.split() if spec_env.strip() else [])


def mirrors_from(namespace: argparse.Namespace, environ: Mapping[str, str] | None = None) -> list[Mirror]:
    """The mirrors the parsed options describe (``--proxy`` before ``REGISTRY_PROXY``)."""
    defaults: dict[str, str] = {}
    if getattr(namespace, "proxy_ttl", None):
        defaults["ttl"] = namespace.proxy_ttl
    if getattr(namespace, "proxy_budget", None):
        defaults["budget"] = namespace.proxy_budget
    specs: Sequence[str] = getattr(namespace, "proxy", None) or getattr(namespace, "_proxy_env", None) or []
    mirrors = [parse_mirror(spec, defaults=defaults, environ=environ) for spec in specs]
    remote = getattr(namespace, "proxy_remote_url", None)
    if remote:
        mirrors.append(parse_mirror(remote, namespace="", defaults=defaults, environ=environ))
    seen: set[str] = set()
    for mirror in mirrors:
        if mirror.namespace in seen:
            raise MirrorConfigError(f"namespace {mirror.namespace or '(every name)'} is mirrored twice")
        seen.add(mirror.namespace)
    return mirrors


def build(namespace: argparse.Namespace) -> "Mirrors | None":
    """The :class:`~.mirrors.Mirrors` for ``Registry(mirrors=...)``, or ``None`` without any."""
    from .mirrors import Mirrors

    mirrors = mirrors_from(namespace)
    return Mirrors(mirrors) if mirrors else None
