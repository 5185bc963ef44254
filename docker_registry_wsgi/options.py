"""The one table of settings: each :class:`Option` is a flag, a ``REGISTRY_*`` variable and a key
of the configuration file at once, read by one reader with one converter per kind of value.

A module declares its settings as a tuple of :class:`Option` (``OPTIONS``); a command is the
tuples it takes. :func:`add_to_parser` makes the argparse flags (``--help`` reads nothing else,
so a bad environment never breaks it) and :func:`resolve` gives each setting its value, in this
order of precedence: the default, the configuration file, the environment, the command line.
Every value is converted and checked there, before anything starts; :class:`OptionErrors` holds
one line per bad setting, each naming it as the user wrote it (``--port 99999``,
``REGISTRY_PORT='abc'``, ``port in registry.toml``). Declaring an option::

    from docker_registry_wsgi.options import Option, integer

    OPTIONS = (
        Option("proxy-ttl", duration(), default=300.0, group="pull-through cache",
               help="how long a tag is served before the upstream is asked again"),
    )

gives ``--proxy-ttl``, ``REGISTRY_PROXY_TTL`` and ``proxy-ttl = "10m"`` in the file, and
``namespace.proxy_ttl`` (a float) to the code that builds from it. docs/operations.rst
("Configuration") has the reference generated from the table (:func:`reference_rst`).
"""

from __future__ import annotations

import argparse
import difflib
import ipaddress
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

from .retention import parse_duration
from .tomlfiles import toml_loads

__all__ = [
    "ConfigurationError",
    "parse_size",
    "Option",
    "CONFIG",
    "Kind",
    "OptionError",
    "OptionErrors",
    "ConfigFile",
    "boolean",
    "integer",
    "number",
    "text",
    "choice",
    "file",
    "path",
    "url",
    "host",
    "duration",
    "tables",
    "parse_boolean",
    "add_to_parser",
    "resolve",
    "parse",
    "load_file",
    "source",
    "reference_rst",
    "toml_loads",
    "TRUE",
    "FALSE",
]

#: The one truth table of booleans in flags' values, variables and files' strings (lower case).
TRUE = frozenset({"true", "yes", "on", "1"})
FALSE = frozenset({"false", "no", "off", "0"})
#: Where :func:`resolve` records how each setting got its value (for messages that name it).
SOURCES = "option_sources"


_BYTES = re.compile(r"\s*(\d+)\s*([KMG]i?B?|B)?\s*", re.IGNORECASE)
_BYTE_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class ConfigurationError(ValueError):
    """Settings that cannot work; the message names the setting and what is wrong.

    The one configuration error type: the option reader's, a framework site's settings
    (``contrib``), the auth set-up's, a mirror's and a webhook's errors are this class or a
    subclass that says which part found it, so ``except ConfigurationError`` catches them all.
    """


def parse_size(value: int | str, setting: str) -> int:
    """A byte count from an int or a string such as ``"4194304"``, ``"4MiB"`` or ``"512K"``.

    Ini files and environment variables only hold strings; binary units are meant throughout.
    """
    if isinstance(value, int):
        size = value
    else:
        match = _BYTES.fullmatch(str(value))
        if match is None:
            raise ConfigurationError(f"{setting}: not a size: {value!r}")
        size = int(match.group(1)) * _BYTE_UNITS[(match.group(2) or "")[:1].lower()]
    if size <= 0:
        raise ConfigurationError(f"{setting}: must be positive, not {value!r}")
    return size


def parse_boolean(value: str) -> bool:
    """``true/false``, ``yes/no``, ``on/off``, ``1/0``, any case; ValueError for anything else."""
    lowered = value.strip().lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise ValueError("expected true or false (or yes/no, on/off, 1/0)")


class OptionError(ConfigurationError):
    """One setting with a bad value; the message is one line that names it."""


class OptionErrors(ConfigurationError):
    """Every bad setting found, one :class:`OptionError` each; ``str()`` is their lines."""

    def __init__(self, errors: Sequence[OptionError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(error) for error in self.errors))


# -- kinds of values --------------------------------------------------------------------------


class Kind:
    """How a kind of value is written and checked.

    :meth:`parse` takes the text of a flag or a variable, :meth:`load` a configuration file's
    value (a TOML string, number, boolean, array or table); both return the value the code uses
    or raise ValueError saying what was expected (the reader adds which setting it was).
    """

    #: What the value is, for help, docs and messages: "a whole number from 0 to 65535".
    describe: str = "a value"
    #: What a configuration file holds: "integer", "string", "boolean", "array of tables".
    toml: str = "string"
    metavar: str = "VALUE"
    #: Relative paths in a configuration file are taken from the file's folder.
    is_path: bool = False
    #: A table or an array of tables in a configuration file (errors name the key, not the value).
    structured: bool = False

    @property
    def text_form(self) -> bool:
        """Also written as text (a flag, a variable); a structured kind without it is file-only."""
        return True

    def parse(self, text: str) -> Any:
        return self.check(text)

    def load(self, value: object) -> Any:
        if not isinstance(value, str):
            raise ValueError(f"expected {self.describe}")
        return self.check(value)

    def check(self, value: Any) -> Any:
        return value


class _Boolean(Kind):
    describe, toml, metavar = "true or false", "boolean", "BOOL"

    def parse(self, text: str) -> bool:
        return parse_boolean(text)

    def load(self, value: object) -> bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value


#: Blanks around a number: ASCII only (``re``'s ``\s`` also takes ``\x1c``-``\x1f``, which
#: ``int()`` and ``float()`` refuse).
_BLANK = "[ \t\n\r\f\v]*"
_INTEGER = re.compile(rf"{_BLANK}[+-]?[0-9]+{_BLANK}")
_NUMBER = re.compile(rf"{_BLANK}[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?{_BLANK}")


def _range(minimum: float | None, maximum: float | None, above: float | None, unit: str) -> str:
    """`` of seconds, above 0``: the unit and the bounds, as :attr:`Kind.describe` ends."""
    def shown(value: float) -> str:
        return str(int(value)) if float(value).is_integer() else f"{value:g}"

    text = f" of {unit}" if unit else ""
    if minimum is not None and maximum is not None:
        return f"{text} from {shown(minimum)} to {shown(maximum)}"
    bounds = []
    if above is not None:
        bounds.append(f"above {shown(above)}")
    if minimum is not None:
        bounds.append(f"at least {shown(minimum)}")
    if maximum is not None:
        bounds.append(f"at most {shown(maximum)}")
    return text + (", " + " and ".join(bounds) if bounds else "")


@dataclass(frozen=True)
class _Integer(Kind):
    minimum: int | None = None
    maximum: int | None = None
    unit: str = ""
    toml = "integer"
    metavar = "N"

    @property
    def describe(self) -> str:  # type: ignore[override]
        return "a whole number" + _range(self.minimum, self.maximum, None, self.unit)

    def parse(self, text: str) -> int:
        if not _INTEGER.fullmatch(text):
            raise ValueError(f"expected {self.describe}")
        return self.check(int(text))

    def load(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected {self.describe}")
        return self.check(value)

    def check(self, value: int) -> int:
        if (self.minimum is not None and value < self.minimum) or (
                self.maximum is not None and value > self.maximum):
            raise ValueError(f"expected {self.describe}")
        return value


@dataclass(frozen=True)
class _Number(Kind):
    minimum: float | None = None
    maximum: float | None = None
    above: float | None = None
    unit: str = ""
    toml = "number"

    @property
    def describe(self) -> str:  # type: ignore[override]
        return "a number" + _range(self.minimum, self.maximum, self.above, self.unit)

    @property
    def metavar(self) -> str:  # type: ignore[override]
        return self.unit.upper() or "NUMBER"

    def parse(self, text: str) -> float:
        if not _NUMBER.fullmatch(text):
            raise ValueError(f"expected {self.describe}")
        return self.check(float(text))

    def load(self, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"expected {self.describe}")
        return self.check(float(value))

    def check(self, value: float) -> float:
        if (not math.isfinite(value) or (self.minimum is not None and value < self.minimum)
                or (self.above is not None and value <= self.above)
                or (self.maximum is not None and value > self.maximum)):
            raise ValueError(f"expected {self.describe}")
        return value


@dataclass(frozen=True)
class _Text(Kind):
    convert: Callable[[str], Any] | None = None
    describe: str = "text"
    metavar: str = "TEXT"

    def check(self, value: str) -> Any:
        return self.convert(value) if self.convert is not None else value


@dataclass(frozen=True)
class _Choice(Kind):
    values: tuple[str, ...] = ()

    @property
    def describe(self) -> str:  # type: ignore[override]
        return "one of " + ", ".join(self.values)

    @property
    def metavar(self) -> str:  # type: ignore[override]
        return "{" + ",".join(self.values) + "}"

    def check(self, value: str) -> str:
        lowered = value.strip().lower()
        if lowered not in self.values:
            raise ValueError(f"expected {self.describe}")
        return lowered


@dataclass(frozen=True)
class _File(Kind):
    validate: Callable[[str], object] | None = None
    describe: str = "the path of a file"
    metavar: str = "FILE"
    is_path = True

    def check(self, value: str) -> str:
        if not value:
            raise ValueError("expected the path of a file")
        if not os.path.exists(value):
            raise ValueError("no such file")
        if not os.path.isfile(value):
            raise ValueError("not a file")
        if not os.access(value, os.R_OK):
            raise ValueError("not readable by this user")
        if self.validate is not None:
            try:
                self.validate(value)
            except (ValueError, ImportError) as exc:  # ImportError: a missing extra, named
                message = str(exc)
                # The setting's message names the file already.
                for prefix in (f"{value}: ", f"{os.path.abspath(value)}: "):
                    message = message[len(prefix):] if message.startswith(prefix) else message
                raise ValueError(message) from None
        return value


@dataclass(frozen=True)
class _Path(Kind):
    describe: str = "a path"
    metavar: str = "PATH"
    is_path = True

    def check(self, value: str) -> str:
        if not value or "\0" in value:
            raise ValueError("expected a path")
        return value


@dataclass(frozen=True)
class _Url(Kind):
    schemes: tuple[str, ...] = ("http", "https")
    metavar = "URL"

    @property
    def describe(self) -> str:  # type: ignore[override]
        return f"a URL ({' or '.join(s + '://' for s in self.schemes)}host...)"

    def check(self, value: str) -> str:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"expected {self.describe}") from None
        if parts.scheme not in self.schemes or not parts.hostname or any(c.isspace() for c in value):
            raise ValueError(f"expected {self.describe}")
        return value


_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")


@dataclass(frozen=True)
class _Host(Kind):
    describe = "a host name, an IPv4 address or an IPv6 address"
    metavar = "HOST"

    def check(self, value: str) -> str:
        """The address without brackets (``[::1]`` -> ``::1``)."""
        bare = value[1:-1] if value.startswith("[") and value.endswith("]") else value
        try:
            return str(ipaddress.ip_address(bare)) if ":" in bare else _ipv4_or_name(bare)
        except ValueError:
            raise ValueError(f"expected {self.describe}") from None


def _ipv4_or_name(value: str) -> str:
    if _HOSTNAME.fullmatch(value) is None:
        raise ValueError(value)
    return value


@dataclass(frozen=True)
class _Duration(Kind):
    positive: bool = False
    describe = "a duration: a number of seconds, or a number and a unit (90m, 36h, 7d)"
    metavar = "DURATION"

    def parse(self, text: str) -> float:
        text = text.strip()
        return self.load(float(text) if _NUMBER.fullmatch(text) else text)

    def load(self, value: object) -> float:
        seconds = parse_duration(value)  # RetentionError (a ValueError) says what is wrong
        if self.positive and seconds <= 0:
            raise ValueError("expected a duration above 0")
        return seconds


@dataclass(frozen=True)
class _Tables(Kind):
    loader: Callable[[Any], Any]
    toml: str = "table"
    describe: str = "a table"
    text: Callable[[str], Any] | None = None
    metavar: str = "VALUE"
    structured = True

    @property
    def text_form(self) -> bool:
        return self.text is not None

    def load(self, value: object) -> Any:
        wanted = list if self.toml.startswith("array") else dict
        if not isinstance(value, wanted):
            raise ValueError(f"expected {'an ' if self.toml[0] == 'a' else 'a '}{self.toml}")
        return self.loader(value)

    def parse(self, text: str) -> Any:
        if self.text is None:
            raise ValueError("only in a configuration file")
        return self.text(text)


def boolean() -> Kind:
    """``true``/``false`` (also ``yes/no``, ``on/off``, ``1/0``); a flag ``--x``/``--no-x``."""
    return _Boolean()


def integer(minimum: int | None = None, maximum: int | None = None, unit: str = "") -> Kind:
    """A whole number (ASCII digits), within the bounds given."""
    return _Integer(minimum, maximum, unit)


def number(minimum: float | None = None, maximum: float | None = None, *, above: float | None = None,
           unit: str = "") -> Kind:
    """A finite decimal number, at least ``minimum`` or more than ``above``, at most ``maximum``."""
    return _Number(minimum, maximum, above, unit)


def text(convert: Callable[[str], Any] | None = None, describe: str = "text", metavar: str = "TEXT") -> Kind:
    """A string, passed through ``convert`` (which may return another value or raise ValueError)."""
    return _Text(convert, describe, metavar)


def choice(*values: str) -> Kind:
    """One of ``values`` (any case given; the value is the lower-case one)."""
    return _Choice(values)


def file(validate: Callable[[str], object] | None = None, describe: str = "the path of a file") -> Kind:
    """The path of an existing, readable file; ``validate(path)`` may also read and check it."""
    return _File(validate, describe)


def path(describe: str = "a path", metavar: str = "PATH") -> Kind:
    """A path that need not exist yet (a folder the command creates)."""
    return _Path(describe, metavar)


def url(*schemes: str) -> Kind:
    """An absolute URL of one of ``schemes`` (default http and https)."""
    return _Url(schemes or ("http", "https"))


def host() -> Kind:
    """A host name or an IP address; IPv6 with or without brackets (the value has none)."""
    return _Host()


def duration(positive: bool = False) -> Kind:
    """Seconds, written ``90``, ``90s``, ``10m``, ``36h``, ``7d`` or ``2w``; a number in a file."""
    return _Duration(positive)


def tables(loader: Callable[[Any], Any], toml: str = "array of tables", describe: str = "",
           text: Callable[[str], Any] | None = None, metavar: str = "VALUE") -> Kind:
    """A configuration file's table (``toml="table"``) or array of tables, checked by ``loader``;
    only in the file, unless ``text`` reads the same setting written as text (a flag's value)."""
    return _Tables(loader, toml, describe or (f"an {toml}" if toml[0] == "a" else f"a {toml}"), text,
                   metavar)


# -- options ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """One setting: flag ``--<name>``, variable ``REGISTRY_<NAME>``, file key ``<name>``.

    ``env``: the variable's name (default from the name), or ``False`` for none; ``also_env``:
    further variables read when it is unset. ``file=False``: not in the configuration file.
    ``flag=False``: not on the command line. ``repeatable``: a list; the flag may be repeated,
    the variable holds items separated by ``separator`` (whitespace by default), the file an
    array. ``default_text`` describes a default that is not a plain value ("one per CPU core").
    ``secret``: its value is never repeated in messages.
    """

    name: str
    kind: Kind
    help: str
    default: Any = None
    group: str = "options"
    dest: str = ""
    env: str | bool = True
    also_env: tuple[str, ...] = ()
    flag: bool = True
    file: bool = True
    repeatable: bool = False
    separator: str | None = None
    secret: bool = False
    default_text: str | None = None
    metavar: str | None = None

    def __post_init__(self) -> None:
        if not self.dest:
            object.__setattr__(self, "dest", self.name.replace("-", "_"))
        if self.env is True:
            object.__setattr__(self, "env", "REGISTRY_" + self.name.upper().replace("-", "_"))
        if self.kind.structured and not self.kind.text_form and (self.flag or self.env):
            raise TypeError(f"option {self.name}: a table is only in a file (flag=False, env=False)")

    @property
    def variable(self) -> str | None:
        """The environment variable, if the option has one."""
        return self.env if isinstance(self.env, str) else None

    @property
    def flags(self) -> str:
        """How the command line writes it: ``--port``, ``--metrics/--no-metrics``."""
        if not self.flag:
            return ""
        return f"--{self.name}/--no-{self.name}" if isinstance(self.kind, _Boolean) else f"--{self.name}"

    def describe_default(self) -> str:
        """The default as help and docs show it."""
        if self.default_text is not None:
            return self.default_text
        if self.secret or self.default is None:
            return "none"
        if isinstance(self.default, bool):
            return "on" if self.default else "off"
        if isinstance(self.default, (list, tuple)):
            return ", ".join(str(item) for item in self.default) or "none"
        if isinstance(self.default, float):
            return f"{self.default:g}"
        return str(self.default)


#: ``--config FILE``: the reader's own option, for every command that reads the file.
CONFIG = Option("config", file(), "read settings from this TOML file, whose keys are these options' "
                "names; the environment and the command line override it", file=False,
                group="configuration")


def _help(option: Option) -> str:
    where = f"env {option.variable}; " if option.variable else ""
    extra = "; repeatable" if option.repeatable else ""
    return f"{option.help} ({where}default {option.describe_default()}{extra})".replace("%", "%%")


def add_to_parser(parser: argparse.ArgumentParser, options: Iterable[Option]) -> None:
    """Add each option's flag to ``parser``, in argument groups; nothing is read or converted.

    Defaults are suppressed: the namespace holds only the flags given, as text (a list for a
    repeatable one, a bool for ``--x/--no-x``), for :func:`resolve`.
    """
    groups: dict[str, Any] = {}
    for option in options:
        if not option.flag:
            continue
        group = groups.get(option.group)
        if group is None:
            group = groups[option.group] = parser.add_argument_group(option.group)
        if isinstance(option.kind, _Boolean):
            group.add_argument(f"--{option.name}", dest=option.dest, action=argparse.BooleanOptionalAction,
                               default=argparse.SUPPRESS, help=_help(option))
        else:
            group.add_argument(f"--{option.name}", dest=option.dest, default=argparse.SUPPRESS,
                               action="append" if option.repeatable else "store",
                               metavar=option.metavar or option.kind.metavar, help=_help(option))


@dataclass
class ConfigFile:
    """A configuration file's top-level values, by key, and where it is (for messages and paths)."""

    path: str
    values: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))


def load_file(name: str, known: Iterable[Option], setting: str = "--config") -> ConfigFile:
    """Read a TOML configuration file; :class:`OptionErrors` for a file that cannot be read or
    parsed, and for each key that no option in ``known`` (every command's) has."""
    try:
        with open(name, "rb") as handle:
            content = handle.read().decode("utf-8")
    except OSError as exc:
        raise OptionErrors([OptionError(f"{setting} {name}: {exc.strerror or exc}")]) from None
    except UnicodeDecodeError:
        raise OptionErrors([OptionError(f"{name}: not UTF-8 text")]) from None
    try:
        values = toml_loads(content)
    except ValueError as exc:  # TOMLDecodeError: its message says the line and column
        raise OptionErrors([OptionError(f"{name}: not valid TOML: {exc}")]) from None
    keys = sorted({option.name for option in known if option.file})
    errors = []
    for key in values:
        if key not in keys:
            close = difflib.get_close_matches(key.replace("_", "-"), keys, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            errors.append(OptionError(f"{name}: unknown key {key!r}{hint}"))
    if errors:
        raise OptionErrors(errors)
    return ConfigFile(name, values)


def _shown(option: Option, value: object) -> str:
    return "<hidden>" if option.secret else repr(value)


def _from_file(option: Option, config: ConfigFile) -> tuple[Any, tuple[str, ...]]:
    raw = config.values[option.name]
    where = ("file", config.path, option.name)

    def one(item: object) -> Any:
        if option.kind.is_path and isinstance(item, str) and item and not os.path.isabs(item):
            item = os.path.join(config.folder, item)
        return option.kind.load(item)

    try:
        if option.repeatable:
            if not isinstance(raw, list):
                raise ValueError(f"expected an array of {option.kind.describe}")
            return [one(item) for item in raw], where
        return one(raw), where
    except ValueError as exc:
        if option.kind.structured:
            message = str(exc)
            named = message.startswith(option.name)
            raise OptionError(f"{config.path}: {message if named else f'{option.name}: {message}'}") from None
        raise OptionError(f"{config.path}: {option.name} = {_shown(option, raw)}: {exc}") from None


def _from_env(option: Option, env: Mapping[str, str]) -> tuple[Any, tuple[str, ...]] | None:
    for variable in (option.variable, *option.also_env):
        if variable is None:
            continue
        raw = env.get(variable, "")
        if not raw.strip():
            continue  # set but empty is unset, as a shell's ``VAR= command`` means
        try:
            if option.repeatable:
                return [option.kind.parse(item) for item in raw.split(option.separator) if item], ("env", variable)
            return option.kind.parse(raw), ("env", variable)
        except ValueError as exc:
            raise OptionError(f"{variable}={_shown(option, raw)}: {exc}") from None
    return None


def _from_flag(option: Option, given: Any) -> Any:
    if isinstance(option.kind, _Boolean) and isinstance(given, bool):
        return given
    items = given if option.repeatable else [given]
    values = []
    for item in items:
        try:
            values.append(option.kind.parse(item))
        except ValueError as exc:
            shown = "<hidden>" if option.secret else (item if item and not any(c.isspace() for c in item)
                                                      else repr(item))
            raise OptionError(f"--{option.name} {shown}: {exc}") from None
    return values if option.repeatable else values[0]


def resolve(options: Iterable[Option], given: Mapping[str, Any], env: Mapping[str, str],
            config: ConfigFile | None = None) -> argparse.Namespace:
    """Each option's value: its flag in ``given`` (by dest), else its variable in ``env``, else
    ``config``'s key, else its default; converted and checked.

    Raises :class:`OptionErrors` with a line for every bad value. The namespace also records
    where each value came from (:func:`source`).
    """
    namespace = argparse.Namespace()
    sources: dict[str, tuple[str, ...]] = {}
    errors: list[OptionError] = []
    for option in options:
        where: tuple[str, ...]
        try:
            if option.flag and option.dest in given:
                value, where = _from_flag(option, given[option.dest]), ("flag", f"--{option.name}")
            else:
                found = _from_env(option, env) if option.variable else None
                if found is None and config is not None and option.file and option.name in config.values:
                    found = _from_file(option, config)
                value, where = found if found is not None else (_default(option), ("default",))
        except OptionError as exc:
            errors.append(exc)
            continue
        setattr(namespace, option.dest, value)
        sources[option.dest] = where
    if errors:
        raise OptionErrors(errors)
    setattr(namespace, SOURCES, sources)
    return namespace


def _default(option: Option) -> Any:
    default = option.default
    return list(default) if isinstance(default, (list, tuple)) else default


def parse(options: Sequence[Option], argv: Sequence[str] = (), env: Mapping[str, str] | None = None,
          config: ConfigFile | None = None) -> argparse.Namespace:
    """``options`` read from ``argv``, ``env`` (default: none) and ``config``: a namespace, as a
    command would get it. For tests and for programs that take some of these options."""
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_to_parser(parser, options)
    given = vars(parser.parse_args(list(argv)))
    return resolve(options, given, env or {}, config)


def source(namespace: argparse.Namespace, dest: str, value: object = None, flag: str | None = None) -> str:
    """How a message names the setting behind ``namespace.<dest>`` (with ``value`` if given), as
    the reader's own messages do: ``--root /srv/r``, ``REGISTRY_ROOT='/srv/r'``,
    ``registry.toml: root = '/srv/r'``; a default is named by its flag (``flag``, else from
    ``dest``)."""
    where: tuple[str, ...] = getattr(namespace, SOURCES, {}).get(dest, ("default",))
    if where[0] == "file":
        return f"{where[1]}: {where[2]}" + ("" if value is None else f" = {value!r}")
    if where[0] == "env":
        return where[1] + ("" if value is None else f"={value!r}")
    name = where[1] if where[0] == "flag" else (flag or "--" + dest.replace("_", "-"))
    return name + ("" if value is None else f" {value}")


# -- the reference in docs ----------------------------------------------------------------------


def _cell(text_: str) -> str:
    return text_.replace("\n", " ").replace("*", "\\*").replace("|", "\\|")


def reference_rst(options: Iterable[Option], title: str | None = None) -> str:
    """The reStructuredText reference of ``options``: a table per group in the table's order, or
    one table under ``title``."""
    by_group: dict[str, list[Option]] = {}
    for option in options:
        by_group.setdefault(title or option.group, []).append(option)
    out: list[str] = []
    for group, members in by_group.items():
        out += [f".. rubric:: {group}", "", ".. list-table::", "   :header-rows: 1",
                "   :widths: 16 18 22 12 32", "",
                "   * - file key", "     - flag", "     - environment variable", "     - default",
                "     - meaning"]
        for option in members:
            key = f"``{option.name}``" if option.file else "(none)"
            flags = f"``{option.flags}``" if option.flag else "(none)"
            variable = ", ".join(f"``{v}``" for v in (option.variable, *option.also_env) if v) or "(none)"
            kind = f"{option.kind.toml}s" if option.repeatable else option.kind.toml
            what = f"{_cell(option.help)}. *{'array of ' if option.repeatable else ''}{kind}*: {_cell(option.kind.describe)}"
            if option.repeatable and option.variable:
                separator = f"``{option.separator}``" if option.separator else "spaces"
                what += f"; the flag is repeated, the variable separates items with {separator}"
            if option.secret:
                what += "; a secret: never shown in messages"
            out += [f"   * - {key}", f"     - {flags}", f"     - {variable}",
                    f"     - {_cell(option.describe_default())}", f"     - {what}"]
        out.append("")
    return "\n".join(out) + "\n"
