"""Mirror settings: the ``NAMESPACE=URL[,key=value...]`` form, sizes and durations, the options
(flags, ``REGISTRY_PROXY*`` variables, ``[[proxy]]`` tables of a ``--config`` file) as serve and gc
read them, and one line naming the setting for each bad one."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_registry_wsgi import cli, options
from docker_registry_wsgi.proxy import Mirror, MirrorConfigError, Mirrors, parse_mirror
from docker_registry_wsgi.proxy.config import DEFAULT_TAG_TTL, OPTIONS, build, describe, mirrors_from


def _options(argv: list[str], env: dict[str, str] | None = None, toml: Path | None = None) -> argparse.Namespace:
    """The proxy settings as a command reads them: flags over variables over a configuration file."""
    config = options.load_file(str(toml), OPTIONS) if toml is not None else None
    return options.parse(OPTIONS, argv, env or {}, config)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands below read os.environ: not the REGISTRY_* variables of whoever runs them."""
    for name in list(os.environ):
        if name.startswith("REGISTRY_"):
            monkeypatch.delenv(name)


def test_spec_with_every_setting(tmp_path: Path) -> None:
    secret = tmp_path / "hub-password"
    secret.write_text("hunter2\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked here")
    mirror = parse_mirror(f"dockerhub=https://registry-1.docker.io,username=me,password-file={secret},"
                          f"ttl=10m,budget=50GiB,timeout=45,ca-file={ca},wait=2m")
    assert mirror == Mirror("dockerhub", "https://registry-1.docker.io", username="me", password="hunter2",
                            tag_ttl=600.0, budget=50 << 30, timeout=45.0, ca_file=str(ca), fill_wait=120.0)
    assert "hunter2" not in repr(mirror)


def test_password_from_the_environment() -> None:
    mirror = parse_mirror("ghcr=https://ghcr.io,username=bot,password-env=GHCR_TOKEN",
                          environ={"GHCR_TOKEN": "ghp_x"})
    assert (mirror.username, mirror.password) == ("bot", "ghp_x")
    either_order = parse_mirror("ghcr=https://ghcr.io,password-env=GHCR_TOKEN,username=bot",
                                environ={"GHCR_TOKEN": "ghp_x"})
    assert either_order == mirror


@pytest.mark.parametrize(("spec", "message"), [
    ("https://ghcr.io", "NAMESPACE=URL"),
    ("=https://ghcr.io", "NAMESPACE=URL"),
    ("Bad_Name=https://ghcr.io", "not a repository name"),
    ("ghcr=ftp://ghcr.io", "http"),
    ("ghcr=https://ghcr.io/v2/", "origin only"),
    ("ghcr=https://user:pw@ghcr.io", "origin only"),
    ("ghcr=https://ghcr.io:99999", "invalid port"),
    ("ghcr=https://ghcr.io,ttl", "not key=value"),
    ("ghcr=https://ghcr.io,colour=blue", "unknown mirror setting"),
    ("ghcr=https://ghcr.io,ttl=soon", "duration"),
    ("ghcr=https://ghcr.io,budget=10TB", "size"),
    ("ghcr=https://ghcr.io,budget=0", "must be positive"),
    ("ghcr=https://ghcr.io,password-env=NOT_SET", "is not set"),
    ("ghcr=https://ghcr.io,password-file=/nonexistent/file", "password-file"),
    ("ghcr=https://ghcr.io,ca-file=/nonexistent/ca.pem", "no such file"),
    ("ghcr=https://ghcr.io,timeout=0", "timeout"),
])
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(MirrorConfigError, match=message):
        parse_mirror(spec, environ={})


def test_password_without_username_is_refused() -> None:
    with pytest.raises(MirrorConfigError, match="without a username"):
        parse_mirror("ghcr=https://ghcr.io,password-env=X", environ={"X": "y"})


@pytest.mark.parametrize(("text", "size"), [("1", 1), ("512K", 512 << 10), ("512MiB", 512 << 20),
                                            ("50G", 50 << 30), ("2gib", 2 << 30), ("7B", 7)])
def test_budget_sizes(text: str, size: int) -> None:
    """The contrib settings' size parser (one place for sizes), in powers of 1024."""
    assert parse_mirror(f"a=https://a.example,budget={text}").budget == size


@pytest.mark.parametrize(("text", "seconds"), [("0", 0.0), ("300", 300.0), ("90s", 90.0), ("10m", 600.0),
                                               ("6h", 21600.0), ("7d", 604800.0), ("1.5h", 5400.0)])
def test_ttl_durations(text: str, seconds: float) -> None:
    """The retention rules' duration parser (one place for durations)."""
    assert parse_mirror(f"a=https://a.example,ttl={text}").tag_ttl == seconds


@given(st.text(max_size=80))
def test_specs_parse_or_raise_a_config_error(text: str) -> None:
    try:
        mirror = parse_mirror(text, environ={})
    except MirrorConfigError:
        return
    assert mirror.url.startswith(("http://", "https://"))


def test_options_build_mirrors_with_defaults_and_overrides() -> None:
    namespace = _options(["--proxy", "hub=https://docker.io", "--proxy", "ghcr=https://ghcr.io,ttl=1h",
                          "--proxy-remote-url", "https://quay.io,budget=1G", "--proxy-ttl", "30s",
                          "--proxy-budget", "5G"])
    assert mirrors_from(namespace, environ={}) == [
        Mirror("hub", "https://docker.io", tag_ttl=30.0, budget=5 << 30),
        Mirror("ghcr", "https://ghcr.io", tag_ttl=3600.0, budget=5 << 30),
        Mirror("", "https://quay.io", tag_ttl=30.0, budget=1 << 30),
    ]
    built = build(namespace)
    assert isinstance(built, Mirrors)
    assert [m.namespace for m in built.mirrors] == ["ghcr", "hub", ""]  # longest first


def test_environment_variables() -> None:
    namespace = _options([], {"REGISTRY_PROXY": "hub=https://docker.io  ghcr=https://ghcr.io,ttl=5",
                              "REGISTRY_PROXY_REMOTE_URL": "https://quay.io",
                              "REGISTRY_PROXY_TTL": "2m", "REGISTRY_PROXY_BUDGET": "3MiB"})
    assert [(m.namespace, m.tag_ttl, m.budget) for m in mirrors_from(namespace, environ={})] == [
        ("hub", 120.0, 3 << 20), ("ghcr", 5.0, 3 << 20), ("", 120.0, 3 << 20)]
    assert _options(["--proxy", "a=https://a.example"], {"REGISTRY_PROXY": "b=https://b.example"}).proxy == [
        "a=https://a.example"]  # the command line wins over the environment


def test_no_options_no_mirrors() -> None:
    assert build(_options([])) is None
    assert _options([]).proxy_ttl == DEFAULT_TAG_TTL == 300.0
    assert describe([]) == "none"


def test_a_namespace_mirrored_twice_is_refused_naming_the_settings(tmp_path: Path) -> None:
    with pytest.raises(MirrorConfigError, match="^--proxy: namespace a is mirrored twice$"):
        mirrors_from(_options(["--proxy", "a=https://a.example", "--proxy", "a=https://b.example"]), environ={})
    config = _toml(tmp_path, '[[proxy]]\nurl = "https://a.example"\n')
    with pytest.raises(MirrorConfigError) as caught:
        mirrors_from(_options(["--proxy-remote-url", "https://b.example"], toml=config), environ={})
    assert str(caught.value) == f"{config}: proxy and --proxy-remote-url: namespace (every name) is mirrored twice"
    with pytest.raises(ValueError, match="mirrored twice"):
        Mirrors([Mirror("a", "https://a.example"), Mirror("a", "https://b.example")])


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "registry.toml"
    path.write_text(text)
    return path


def test_proxy_tables_in_a_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``[[proxy]]`` tables (Mirror.from_mapping) under the file's ``proxy-ttl``/``proxy-budget``,
    which a table's own keys override; ``--proxy`` and ``REGISTRY_PROXY`` replace the tables, as a
    flag replaces any list of the file."""
    monkeypatch.setenv("HUB_TOKEN", "pw")
    config = _toml(tmp_path, 'proxy-ttl = "1m"\nproxy-budget = "2GiB"\n'
                   '[[proxy]]\nnamespace = "hub"\nurl = "https://docker.io"\nusername = "me"\n'
                   'password_env = "HUB_TOKEN"\n'
                   '[[proxy]]\nnamespace = "ghcr"\nurl = "https://ghcr.io"\nttl = 10\nbudget = "1GiB"\n')
    namespace = _options([], toml=config)
    assert mirrors_from(namespace) == [
        Mirror("hub", "https://docker.io", username="me", password="pw", tag_ttl=60.0, budget=2 << 30),
        Mirror("ghcr", "https://ghcr.io", tag_ttl=10.0, budget=1 << 30)]
    assert describe(mirrors_from(namespace)) == (
        "ghcr/ -> https://ghcr.io (ttl 10s, budget 1 GiB); "
        "hub/ -> https://docker.io (ttl 1m, budget 2 GiB, as me), read-only")
    assert mirrors_from(_options(["--proxy", "q=https://quay.io"], toml=config)) == [
        Mirror("q", "https://quay.io", tag_ttl=60.0, budget=2 << 30)]
    assert mirrors_from(_options([], {"REGISTRY_PROXY": "q=https://quay.io"}, toml=config))[0].namespace == "q"
    # serve and gc read the same file
    for command in ("serve", "gc"):
        read = cli.parse([command, "--config", str(config), "--root", str(tmp_path)])
        assert [m.namespace for m in mirrors_from(read)] == ["hub", "ghcr"]


@pytest.mark.parametrize(("toml", "line"), [
    ('proxy = "hub=https://docker.io"', "proxy: expected an array of tables ([[proxy]])"),
    ('proxy = ["hub=https://docker.io"]', "proxy: expected a table"),
    ('[[proxy]]\nnamespace = "hub"\nurl = "https://docker.io"\npassword = "hunter2"\ncolour = "blue"',
     "proxy: mirror hub: unknown mirror settings: colour"),
    ('[[proxy]]\nnamespace = "hub"', "proxy: mirror hub: a mirror needs a url"),
    ('[[proxy]]\nnamespace = "hub"\nurl = "https://docker.io"\nttl = "soon"', "proxy: mirror hub: ttl: bad duration 'soon'"),
    ('[[proxy]]\nnamespace = "Hub"\nurl = "https://docker.io"', "proxy: mirror Hub: mirror namespace 'Hub' is not a repository name"),
    ('proxy-ttl = "soon"', "proxy-ttl = 'soon': bad duration 'soon'"),
    ('proxy-budget = "lots"', "proxy-budget = 'lots': not a size: 'lots'"),
    ('proxy-remote-url = "quay.io"', "proxy-remote-url = 'quay.io': upstream 'quay.io': expected http(s)://host[:port]"),
])
def test_bad_file_settings_are_one_line_naming_the_key(tmp_path: Path, toml: str, line: str) -> None:
    config = _toml(tmp_path, toml + "\n")
    with pytest.raises(options.OptionErrors) as caught:
        _options([], toml=config)
    assert str(caught.value).startswith(f"{config}: {line}")
    assert "\n" not in str(caught.value) and "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("argv", "env", "line"), [
    (["--proxy", "hub"], {}, "--proxy hub: expected NAMESPACE=URL[,key=value...]"),
    (["--proxy", "hub=https://docker.io,budget=0"], {}, "--proxy hub=https://docker.io,budget=0: budget: must be positive"),
    (["--proxy", "hub=https://docker.io,password-env=NOT_SET_HERE"], {},
     "--proxy hub=https://docker.io,password-env=NOT_SET_HERE: password-env NOT_SET_HERE is not set"),
    ([], {"REGISTRY_PROXY": "hub=https://docker.io ghcr=gopher://ghcr.io"},
     "REGISTRY_PROXY='hub=https://docker.io ghcr=gopher://ghcr.io': upstream 'gopher://ghcr.io': expected http(s)"),
    (["--proxy", "hub=https://docker.io,colour=blue"], {},
     "--proxy hub=https://docker.io,colour=blue: unknown mirror setting 'colour'; known: username, "),
    (["--proxy", "hub=https://docker.io,ttl=soon"], {}, "--proxy hub=https://docker.io,ttl=soon: ttl: bad duration"),
    (["--proxy-ttl", "soon"], {}, "--proxy-ttl soon: bad duration 'soon'"),
    (["--proxy-budget", "0"], {}, "--proxy-budget 0: must be positive, not '0'"),
    ([], {"REGISTRY_PROXY_BUDGET": "10TB"}, "REGISTRY_PROXY_BUDGET='10TB': not a size: '10TB'"),
    (["--proxy-remote-url", "https://quay.io/v2/"], {}, "--proxy-remote-url https://quay.io/v2/: upstream "
     "'https://quay.io/v2/': give the registry's origin only"),
])
@pytest.mark.parametrize("command", ["serve", "gc"])
def test_bad_settings_exit_2_in_one_line(command: str, argv: list[str], env: dict[str, str], line: str,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([command, "--root", str(tmp_path), *argv], env) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"docker-registry-wsgi: {line}") and err.count("\n") == 1, err


@pytest.mark.parametrize("command", ["serve", "gc"])
def test_a_namespace_mirrored_twice_exits_2_before_anything_starts(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "blobs").mkdir()  # gc wants a root that holds a registry; it must not get there
    argv = [command, "--root", str(tmp_path), "--proxy", "a=https://a.example", "--proxy", "a=https://b.example"]
    assert cli.main(argv, {}) == 2
    assert capsys.readouterr().err == "docker-registry-wsgi: --proxy: namespace a is mirrored twice\n"


def test_config_check_reads_and_checks_the_mirrors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = _toml(tmp_path, f'root = "{tmp_path}/data"\nproxy-budget = "10GiB"\n'
                 '[[proxy]]\nnamespace = "dockerhub"\nurl = "https://registry-1.docker.io"\n')
    assert cli.main(["config", "check", str(good)], {}) == 0
    assert capsys.readouterr().out == "ok\n"
    assert cli.main(["config", "check", str(good)], {"REGISTRY_PROXY": "dockerhub=https://quay.io "
                                                                      "dockerhub=https://ghcr.io"}) == 2
    assert capsys.readouterr().err == "docker-registry-wsgi: REGISTRY_PROXY: namespace dockerhub is mirrored twice\n"
    bad = _toml(tmp_path, '[[proxy]]\nurl = "https://ghcr.io"\nwait = -1\n')
    assert cli.main(["config", "check", str(bad)], {}) == 2
    assert capsys.readouterr().err == (
        f"docker-registry-wsgi: {bad}: proxy: mirror (every name): wait: duration -1.0 is negative\n")


@given(st.dictionaries(st.sampled_from(["namespace", "url", "username", "password", "password_env", "ttl",
                                        "budget", "timeout", "wait", "colour"]),
                       st.one_of(st.text(max_size=30), st.integers(-5, 1 << 40), st.floats(), st.booleans()),
                       max_size=6))
def test_tables_read_or_raise_a_config_error(doc: dict[str, Any]) -> None:
    """Mirror.from_mapping, the one reader of a [[proxy]] table: a mirror or one MirrorConfigError."""
    try:
        mirror = Mirror.from_mapping(doc, environ={})
    except MirrorConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert mirror.url.startswith(("http://", "https://")) and mirror.tag_ttl >= 0


def test_configuration_table() -> None:
    mirror = Mirror.from_mapping({"namespace": "hub", "url": "https://docker.io", "username": "me",
                                  "password_env": "HUB", "ttl": 60, "budget": "2GiB"}, environ={"HUB": "pw"})
    assert mirror == Mirror("hub", "https://docker.io", username="me", password="pw", tag_ttl=60.0,
                            budget=2 << 30)
    assert Mirror.from_mapping({"url": "https://quay.io", "password": "x", "username": "u"}).namespace == ""
    with pytest.raises(MirrorConfigError, match="unknown mirror settings: colour"):
        Mirror.from_mapping({"url": "https://quay.io", "colour": "blue"})
    with pytest.raises(MirrorConfigError, match="needs a url"):
        Mirror.from_mapping({"namespace": "hub"})
