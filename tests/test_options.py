"""The one reader of settings (docker_registry_wsgi/options.py): each kind of value from a flag,
a ``REGISTRY_*`` variable and a TOML file, the order in which they override each other, and one
line naming the setting for every bad value. Hypothesis generates the values.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, strategies as st

from docker_registry_wsgi import cli, options
from docker_registry_wsgi.options import (
    FALSE,
    TRUE,
    ConfigFile,
    Option,
    OptionErrors,
    boolean,
    choice,
    duration,
    file,
    host,
    integer,
    number,
    tables,
    text,
    url,
)
from docker_registry_wsgi.server import SERVE_OPTIONS

#: One option of each kind, as modules declare them.
FLAG = Option("switch", boolean(), "a switch", default=False)
PORT = Option("port", integer(0, 65535), "a port", default=5000)
WAIT = Option("wait", number(above=0, unit="seconds"), "a timeout", default=5.0)
MODE = Option("mode", choice("text", "json"), "a choice", default="text")
WHERE = Option("where", url(), "a URL")
NAME = Option("name", host(), "a host", default="127.0.0.1")
KEEP = Option("keep", duration(positive=True), "a duration", default=86400.0)
TAGS = Option("tag", text(metavar="TAG"), "a list", dest="tags", env="REGISTRY_TAGS", repeatable=True, default=())
SECRET = Option("password", text(), "a secret", secret=True)
TABLE = (FLAG, PORT, WAIT, MODE, WHERE, NAME, KEEP, TAGS, SECRET)


def read(option: Option, argv: list[str] | None = None, env: dict[str, str] | None = None,
         toml: str | None = None, tmp: Path | None = None) -> Any:
    """``option``'s value from a flag, a variable and/or a configuration file's text."""
    config = None
    if toml is not None:
        assert tmp is not None
        target = tmp / "registry.toml"
        target.write_text(toml)
        config = options.load_file(str(target), [option])
    return getattr(options.parse((option,), argv or [], env or {}, config), option.dest)


def refusal(option: Option, argv: list[str] | None = None, env: dict[str, str] | None = None,
            config: ConfigFile | None = None) -> str:
    """The one line that refuses a value."""
    with pytest.raises(OptionErrors) as caught:
        options.parse((option,), argv or [], env or {}, config)
    assert len(caught.value.errors) == 1
    line = str(caught.value)
    assert "\n" not in line
    return line


def file_of(option: Option, value: Any) -> ConfigFile:
    return ConfigFile("registry.toml", {option.name: value})


def any_case(word: str) -> st.SearchStrategy[str]:
    return st.lists(st.booleans(), min_size=len(word), max_size=len(word)).map(
        lambda upper: "".join(c.upper() if u else c for c, u in zip(word, upper)))


# -- booleans: one truth table ------------------------------------------------------------------


@given(st.sampled_from(sorted(TRUE | FALSE)).flatmap(lambda w: st.tuples(st.just(w), any_case(w))),
       st.sampled_from(["", " ", "\t"]))
def test_booleans_read_the_truth_table_in_any_case(word_and_spelling: tuple[str, str], space: str) -> None:
    word, spelling = word_and_spelling
    expected = word in TRUE
    assert read(FLAG, env={"REGISTRY_SWITCH": space + spelling + space}) is expected
    assert options.parse_boolean(spelling) is expected


@given(st.text(max_size=12))
def test_any_other_boolean_text_is_refused_naming_the_variable(value: str) -> None:
    assume(value.strip().lower() not in TRUE | FALSE and value.strip())
    line = refusal(FLAG, env={"REGISTRY_SWITCH": value})
    assert line == f"REGISTRY_SWITCH={value!r}: expected true or false (or yes/no, on/off, 1/0)"


def test_no_is_false_everywhere() -> None:
    """The bug this table fixes: ``REGISTRY_ACCESS_LOG=no`` turned the access log on."""
    namespace = cli.parse(["serve"], {"REGISTRY_ACCESS_LOG": "no", "REGISTRY_METRICS": "No",
                                      "REGISTRY_S3_REDIRECT": "off", "REGISTRY_DELETE_ENABLED": "0"})
    assert (namespace.access_log, namespace.metrics, namespace.s3_redirect, namespace.delete_enabled) == (
        False, False, False, False)


@given(st.one_of(st.booleans(), st.integers(), st.text(max_size=5), st.floats(allow_nan=False)))
def test_a_file_takes_toml_booleans_only(value: object) -> None:
    config = file_of(FLAG, value)
    if isinstance(value, bool):
        assert options.parse((FLAG,), [], {}, config).switch is value
    else:
        assert refusal(FLAG, config=config) == f"registry.toml: switch = {value!r}: expected true or false"


def test_boolean_flags_have_a_no_form_that_beats_the_environment() -> None:
    assert read(FLAG, ["--switch"], {"REGISTRY_SWITCH": "false"}) is True
    assert read(FLAG, ["--no-switch"], {"REGISTRY_SWITCH": "yes"}) is False


# -- whole numbers and numbers --------------------------------------------------------------------


@given(st.integers(-10**6, 10**6))
def test_whole_numbers_in_range_or_refused(value: int) -> None:
    for given_ in ({"argv": ["--port", str(value)]}, {"env": {"REGISTRY_PORT": str(value)}}):
        if 0 <= value <= 65535:
            assert read(PORT, **given_) == value  # type: ignore[arg-type]
        else:
            line = refusal(PORT, **given_)  # type: ignore[arg-type]
            assert line.endswith(": expected a whole number from 0 to 65535")
            assert line.startswith(("--port ", "REGISTRY_PORT="))
    config = file_of(PORT, value)
    if 0 <= value <= 65535:
        assert options.parse((PORT,), [], {}, config).port == value
    else:
        assert refusal(PORT, config=config) == f"registry.toml: port = {value}: expected a whole number from 0 to 65535"


@given(st.text(max_size=8))
def test_whole_numbers_are_ascii_digits(value: str) -> None:
    """``1_000``, ``٣``, ``0x10`` and ``5.0`` are not whole numbers here, though Python's int()
    takes some of them."""
    assume(value.strip())
    ascii_decimal = re.fullmatch(r"[ \t\n\r\f\v]*[+-]?[0-9]+[ \t\n\r\f\v]*", value) is not None
    if ascii_decimal and 0 <= int(value) <= 65535:
        assert read(PORT, env={"REGISTRY_PORT": value}) == int(value)
    else:
        assert refusal(PORT, env={"REGISTRY_PORT": value}).startswith(f"REGISTRY_PORT={value!r}: expected")


@pytest.mark.parametrize("value", ["5\x1f", "\x1c5", "5\xa0", "\u20035"])
def test_only_ascii_blanks_may_surround_a_number(value: str) -> None:
    r"""Python's int() and float() take some non-ASCII blanks and refuse the ASCII separators
    (``\x1c``-``\x1f``) that ``re``'s ``\s`` matches: each is refused with the usual line."""
    assert refusal(PORT, env={"REGISTRY_PORT": value}).startswith(f"REGISTRY_PORT={value!r}: expected a whole number")


@given(st.one_of(st.text(max_size=5), st.floats(), st.booleans(), st.lists(st.integers(), max_size=2)))
def test_a_file_takes_toml_integers_only(value: object) -> None:
    assert refusal(PORT, config=file_of(PORT, value)).startswith(f"registry.toml: port = {value!r}: expected")


@given(st.floats(allow_nan=True, allow_infinity=True))
def test_numbers_are_finite_and_within_bounds(value: float) -> None:
    fine = math.isfinite(value) and value > 0
    for source in ("flag", "env", "file"):
        argv = [f"--wait={value!r}"] if source == "flag" else []
        env = {"REGISTRY_WAIT": repr(value)} if source == "env" else {}
        config = file_of(WAIT, value) if source == "file" else None
        if fine:
            assert options.parse((WAIT,), argv, env, config).wait == value
        else:
            line = refusal(WAIT, argv, env, config)
            assert line.endswith(": expected a number of seconds, above 0")


def test_numbers_take_integers_in_a_file_and_refuse_words() -> None:
    assert options.parse((WAIT,), [], {}, file_of(WAIT, 3)).wait == 3.0
    assert refusal(WAIT, ["--wait", "nan"]) == "--wait nan: expected a number of seconds, above 0"
    assert refusal(WAIT, env={"REGISTRY_WAIT": "1_0"}) == "REGISTRY_WAIT='1_0': expected a number of seconds, above 0"


# -- choices, URLs, hosts, durations, files -------------------------------------------------------


@given(st.sampled_from(["text", "json"]).flatmap(any_case))
def test_choices_in_any_case(value: str) -> None:
    assert read(MODE, ["--mode", value]) == value.lower()


@given(st.text(max_size=8))
def test_other_choices_are_refused_with_the_list(value: str) -> None:
    assume(value.strip().lower() not in ("text", "json") and value.strip() and not value.startswith("-"))
    assert refusal(MODE, env={"REGISTRY_MODE": value}) == f"REGISTRY_MODE={value!r}: expected one of text, json"


@given(st.from_regex(r"https?://[a-z][a-z0-9.-]{0,20}(:[1-9][0-9]{0,3})?(/[a-z0-9/_.-]{0,20})?", fullmatch=True))
def test_urls(value: str) -> None:
    assert read(WHERE, ["--where", value]) == value


@pytest.mark.parametrize("value", ["ftp://x/", "http://", "x.example", "http://a b/", "http://x:99999/"])
def test_bad_urls(value: str) -> None:
    assert refusal(WHERE, env={"REGISTRY_WHERE": value}) == (
        f"REGISTRY_WHERE={value!r}: expected a URL (http:// or https://host...)")


@given(st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str),
                 st.ip_addresses(v=6).map(lambda a: f"[{a}]"),
                 st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{1,8}){0,3}", fullmatch=True)))
def test_hosts_names_and_addresses_ipv6_without_brackets(value: str) -> None:
    parsed = read(NAME, env={"REGISTRY_NAME": value})
    bare = value.strip("[]")
    if ":" in bare:
        assert parsed == str(ipaddress.ip_address(bare))
    else:
        assert parsed == value


@pytest.mark.parametrize("value", ["a b", "-x", "host_name", "[::1", "::1]", "1.2.3.4:80", "::g"])
def test_bad_hosts(value: str) -> None:
    assert refusal(NAME, env={"REGISTRY_NAME": value}).endswith(
        ": expected a host name, an IPv4 address or an IPv6 address")


@given(st.integers(1, 10**6), st.sampled_from([("s", 1), ("m", 60), ("h", 3600), ("d", 86400), ("w", 604800)]))
def test_durations_with_units_or_seconds(count: int, unit: tuple[str, int]) -> None:
    assert read(KEEP, ["--keep", f"{count}{unit[0]}"]) == count * unit[1]
    assert read(KEEP, env={"REGISTRY_KEEP": str(count)}) == count
    assert options.parse((KEEP,), [], {}, file_of(KEEP, count)).keep == count
    assert options.parse((KEEP,), [], {}, file_of(KEEP, f"{count}{unit[0]}")).keep == count * unit[1]


def test_bad_durations() -> None:
    assert refusal(KEEP, ["--keep", "0"]) == "--keep 0: expected a duration above 0"
    assert refusal(KEEP, ["--keep", "soon"]).startswith("--keep soon: bad duration 'soon'")


def test_files_must_exist_be_files_and_pass_their_check(tmp_path: Path) -> None:
    def check(path_: str) -> None:
        if Path(path_).read_text() != "good":
            raise ValueError(f"{path_}: not good")

    rules = Option("rules", file(check), "a rules file")
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("good")
    bad.write_text("bad")
    assert read(rules, ["--rules", str(good)]) == str(good)
    assert refusal(rules, ["--rules", str(tmp_path / "none")]) == f"--rules {tmp_path}/none: no such file"
    assert refusal(rules, ["--rules", str(tmp_path)]) == f"--rules {tmp_path}: not a file"
    # The check's message names the file already: said once.
    assert refusal(rules, env={"REGISTRY_RULES": str(bad)}) == f"REGISTRY_RULES={str(bad)!r}: not good"


def test_relative_paths_in_a_file_are_the_files_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configuration file names files beside it however the server is started; flags and
    variables are taken from the working folder, as a shell would."""
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "users.htpasswd").write_text("")
    config = tmp_path / "etc" / "registry.toml"
    config.write_text('htpasswd = "users.htpasswd"\nroot = "data"\n')
    monkeypatch.chdir(tmp_path)
    namespace = cli.parse(["serve", "--config", str(config)])
    assert (namespace.htpasswd, namespace.root) == (str(tmp_path / "etc" / "users.htpasswd"),
                                                    str(tmp_path / "etc" / "data"))
    assert cli.parse(["serve", "--root", "data"]).root == "data"


# -- lists, secrets, tables ------------------------------------------------------------------------


@given(st.lists(st.from_regex(r"[a-z0-9.:/-]{1,10}", fullmatch=True), min_size=1, max_size=4),
       st.lists(st.from_regex(r"[a-z0-9]{1,5}", fullmatch=True), min_size=1, max_size=3))
def test_lists_from_each_source_replace_each_other(from_env: list[str], from_flags: list[str]) -> None:
    config = file_of(TAGS, ["from-file"])
    env = {"REGISTRY_TAGS": "  ".join(from_env)}
    assert options.parse((TAGS,), [], {}, config).tags == ["from-file"]
    assert options.parse((TAGS,), [], env, config).tags == from_env
    argv = [part for tag in from_flags for part in ("--tag", tag)]
    assert options.parse((TAGS,), argv, env, config).tags == from_flags
    assert options.parse((TAGS,), [], {}).tags == []


def test_a_list_in_a_file_is_an_array() -> None:
    assert refusal(TAGS, config=file_of(TAGS, "one")) == "registry.toml: tag = 'one': expected an array of text"


def test_secrets_are_never_repeated() -> None:
    secret = Option("secret-port", integer(0, 10), "a secret number", secret=True)
    assert refusal(secret, ["--secret-port", "hunter2"]) == "--secret-port <hidden>: expected a whole number from 0 to 10"
    assert refusal(secret, env={"REGISTRY_SECRET_PORT": "hunter2"}) == (
        "REGISTRY_SECRET_PORT=<hidden>: expected a whole number from 0 to 10")
    assert "hunter2" not in refusal(secret, config=file_of(secret, "hunter2"))
    assert SECRET.describe_default() == "none"


def test_tables_only_in_a_file() -> None:
    def endpoints(value: list[Any]) -> list[Any]:
        if any("url" not in entry for entry in value):
            raise ValueError("hooks[0]: url is required")
        return value

    hooks = Option("hooks", tables(endpoints), "endpoints", flag=False, env=False, default=())
    assert options.parse((hooks,), [], {}, file_of(hooks, [{"url": "x"}])).hooks == [{"url": "x"}]
    assert refusal(hooks, config=file_of(hooks, [{}])) == "registry.toml: hooks[0]: url is required"
    assert refusal(hooks, config=file_of(hooks, {"url": "x"})) == "registry.toml: hooks: expected an array of tables"
    with pytest.raises(TypeError, match="only in a file"):
        Option("hooks", tables(endpoints), "endpoints")


def test_tables_with_a_text_form_are_a_repeated_flag_too() -> None:
    """``--proxy hub=URL`` (repeated), ``REGISTRY_PROXY`` and ``[[proxy]]`` tables are one setting:
    a table kind with a text form; each source replaces the others, as for any list."""
    def table(value: dict[str, Any]) -> dict[str, Any]:
        if "url" not in value:
            raise ValueError("a mirror needs a url")
        return value

    def spec(text_: str) -> dict[str, Any]:
        name, equals, where = text_.partition("=")
        if not equals:
            raise ValueError("expected NAME=URL")
        return {"name": name, "url": where}

    mirror = Option("mirror", tables(table, toml="table", text=spec, metavar="NAME=URL"), "mirrors",
                    repeatable=True, default=())
    from_file = file_of(mirror, [{"url": "f"}])
    assert options.parse((mirror,), [], {}, from_file).mirror == [{"url": "f"}]
    assert options.parse((mirror,), [], {"REGISTRY_MIRROR": "a=1 b=2"}, from_file).mirror == [
        {"name": "a", "url": "1"}, {"name": "b", "url": "2"}]
    assert options.parse((mirror,), ["--mirror", "c=3"], {"REGISTRY_MIRROR": "a=1"}, from_file).mirror == [
        {"name": "c", "url": "3"}]
    assert refusal(mirror, ["--mirror", "c"]) == "--mirror c: expected NAME=URL"
    assert refusal(mirror, config=file_of(mirror, [{"password": "hunter2"}])) == (
        "registry.toml: mirror: a mirror needs a url")  # the value is not repeated: it may hold secrets
    assert refusal(mirror, config=file_of(mirror, ["c=3"])) == "registry.toml: mirror: expected a table"


# -- precedence, and every bad setting at once --------------------------------------------------


@given(st.booleans(), st.booleans(), st.booleans())
def test_defaults_then_file_then_environment_then_flags(in_file: bool, in_env: bool, on_line: bool) -> None:
    config = file_of(PORT, 1001) if in_file else None
    env = {"REGISTRY_PORT": "1002"} if in_env else {}
    argv = ["--port", "1003"] if on_line else []
    expected = 1003 if on_line else 1002 if in_env else 1001 if in_file else 5000
    namespace = options.parse((PORT,), argv, env, config)
    assert namespace.port == expected
    assert options.source(namespace, "port", namespace.port) == (
        "--port 1003" if on_line else "REGISTRY_PORT=1002" if in_env
        else "registry.toml: port = 1001" if in_file else "--port 5000")


def test_an_empty_variable_is_unset() -> None:
    assert read(PORT, env={"REGISTRY_PORT": ""}) == 5000
    assert read(PORT, env={"REGISTRY_PORT": "  "}, argv=[]) == 5000


def test_every_bad_setting_is_one_line() -> None:
    with pytest.raises(OptionErrors) as caught:
        options.parse(TABLE, ["--port", "99999"], {"REGISTRY_SWITCH": "maybe", "REGISTRY_WAIT": "-1"},
                      ConfigFile("registry.toml", {"mode": 3}))
    assert str(caught.value).splitlines() == [
        "REGISTRY_SWITCH='maybe': expected true or false (or yes/no, on/off, 1/0)",
        "--port 99999: expected a whole number from 0 to 65535",
        "REGISTRY_WAIT='-1': expected a number of seconds, above 0",
        "registry.toml: mode = 3: expected one of text, json",
    ]


# -- the configuration file itself ----------------------------------------------------------------


def test_unknown_keys_and_near_misses(tmp_path: Path) -> None:
    config = tmp_path / "registry.toml"
    config.write_text('porrt = 5000\ns3_bucket = "b"\nport = 5001\n')
    with pytest.raises(OptionErrors) as caught:
        options.load_file(str(config), SERVE_OPTIONS)
    assert str(caught.value).splitlines() == [
        f"{config}: unknown key 'porrt' (did you mean 'port'?)",
        f"{config}: unknown key 's3_bucket' (did you mean 's3-bucket'?)",
    ]


def test_a_file_that_is_not_toml_or_not_there(tmp_path: Path) -> None:
    config = tmp_path / "registry.toml"
    config.write_text("port = \n")
    with pytest.raises(OptionErrors) as caught:
        options.load_file(str(config), SERVE_OPTIONS)
    assert str(caught.value).startswith(f"{config}: not valid TOML: ") and "line 1" in str(caught.value)
    with pytest.raises(OptionErrors, match="^--config /nonexistent.toml: No such file or directory$"):
        options.load_file("/nonexistent.toml", SERVE_OPTIONS)
    config.write_bytes(b"root = '\xff'\n")
    with pytest.raises(OptionErrors, match="not UTF-8"):
        options.load_file(str(config), SERVE_OPTIONS)


def test_the_docs_reference_is_the_table(repo_root: Path) -> None:
    """docs/options.inc is generated from the table (``python docs/generate_options.py``);
    this fails when an option changes and the page was not regenerated."""
    from docs.generate_options import render

    assert (repo_root / "docs" / "options.inc").read_text() == render(), (
        "docs/options.inc is out of date: run python docs/generate_options.py")


def test_every_option_of_every_command_reads_its_default_back() -> None:
    """Each option's default, written as a flag, a variable or a file value, reads back as itself
    (the table's defaults are values its own kinds accept)."""
    for command in cli.COMMANDS.values():
        for option in command.options:
            if option.default is None or option.kind.structured or not option.flag:
                continue
            default = option.default
            if isinstance(default, bool):
                argv = [f"--{option.name}" if default else f"--no-{option.name}"]
            elif option.repeatable:
                argv = [part for item in default for part in (f"--{option.name}", str(item))]
            elif isinstance(default, (list, tuple)):  # one value that is a list: --webhook-actions
                argv = [f"--{option.name}", ",".join(default)]
            else:
                argv = [f"--{option.name}", f"{default}"]
            assert getattr(options.parse((option,), argv), option.dest) == (
                list(default) if isinstance(default, (list, tuple)) else default), option.name
            if option.variable and not option.repeatable and not isinstance(default, (bool, list, tuple)):
                env = {option.variable: str(default)}
                assert getattr(options.parse((option,), [], env), option.dest) == default, option.name
            if option.file and not option.repeatable and not isinstance(default, (list, tuple)):
                config = ConfigFile("registry.toml", {option.name: default})
                expected = os.path.join(os.getcwd(), default) if option.kind.is_path else default
                assert getattr(options.parse((option,), [], {}, config), option.dest) == expected, option.name


def test_option_names_are_unique_per_command_and_variables_registry_prefixed() -> None:
    for name, command in cli.COMMANDS.items():
        names = [option.name for option in command.options]
        assert len(names) == len(set(names)), name
        dests = [option.dest for option in command.options]
        assert len(dests) == len(set(dests)), name
        for option in command.options:
            assert option.variable is None or option.variable.startswith("REGISTRY_"), option.name
    assert os.pathsep == ":"  # the token keys' separator, as the docs say


def test_every_part_reports_bad_settings_as_the_one_configuration_error() -> None:
    """Issue 13: one configuration error type; each part's own error says where it was found."""
    from docker_registry_wsgi.auth.config import OPTIONS as AUTH_OPTIONS, build as build_auth
    from docker_registry_wsgi.contrib import parse_size
    from docker_registry_wsgi.proxy import parse_mirror
    from docker_registry_wsgi.webhooks import Endpoint

    auth_settings = options.resolve(AUTH_OPTIONS, {"auth": "htpasswd"}, {})  # without --htpasswd
    failing = [
        lambda: options.resolve((PORT,), {}, {"REGISTRY_PORT": "abc"}),
        lambda: parse_size("12 apples", "max_manifest_size"),
        lambda: build_auth(auth_settings),
        lambda: parse_mirror("ghcr=https://ghcr.io,timeout=0", environ={}),
        lambda: Endpoint.from_mapping({"url": "ftp://x/"}, where="webhooks[0]"),
    ]
    for fail in failing:
        with pytest.raises(options.ConfigurationError):
            fail()
