"""Mirror settings: the ``NAMESPACE=URL[,key=value...]`` form, sizes and durations, the options
and their environment variables, configuration tables."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from docker_registry_wsgi.proxy import Mirror, MirrorConfigError, Mirrors, parse_mirror
from docker_registry_wsgi.proxy.config import DEFAULT_TAG_TTL, add_arguments, build, mirrors_from


def _options(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, env or {})
    return parser.parse_args(argv)


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
    options = _options(["--proxy", "hub=https://docker.io", "--proxy", "ghcr=https://ghcr.io,ttl=1h",
                        "--proxy-remote-url", "https://quay.io,budget=1G", "--proxy-ttl", "30s",
                        "--proxy-budget", "5G"])
    assert mirrors_from(options, environ={}) == [
        Mirror("hub", "https://docker.io", tag_ttl=30.0, budget=5 << 30),
        Mirror("ghcr", "https://ghcr.io", tag_ttl=3600.0, budget=5 << 30),
        Mirror("", "https://quay.io", tag_ttl=30.0, budget=1 << 30),
    ]
    built = build(options)
    assert isinstance(built, Mirrors)
    assert [m.namespace for m in built.mirrors] == ["ghcr", "hub", ""]  # longest first


def test_environment_variables() -> None:
    options = _options([], {"REGISTRY_PROXY": "hub=https://docker.io  ghcr=https://ghcr.io,ttl=5",
                            "REGISTRY_PROXY_REMOTE_URL": "https://quay.io",
                            "REGISTRY_PROXY_TTL": "2m"})
    assert [(m.namespace, m.tag_ttl) for m in mirrors_from(options, environ={})] == [
        ("hub", 120.0), ("ghcr", 5.0), ("", 120.0)]
    assert _options(["--proxy", "a=https://a.example"], {"REGISTRY_PROXY": "b=https://b.example"}).proxy == [
        "a=https://a.example"]  # the command line wins over the environment


def test_no_options_no_mirrors() -> None:
    assert build(_options([])) is None
    assert DEFAULT_TAG_TTL == 300.0


def test_a_namespace_mirrored_twice_is_refused() -> None:
    with pytest.raises(MirrorConfigError, match="mirrored twice"):
        mirrors_from(_options(["--proxy", "a=https://a.example", "--proxy", "a=https://b.example"]), environ={})
    with pytest.raises(ValueError, match="mirrored twice"):
        Mirrors([Mirror("a", "https://a.example"), Mirror("a", "https://b.example")])


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
