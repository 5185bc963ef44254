"""auth/config: the standalone server's auth options and what build() makes of them."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Callable

import pytest
import webtest

from docker_registry_wsgi import options
from docker_registry_wsgi.auth.base import Access, AllowAll
from docker_registry_wsgi.auth.config import OPTIONS, ConfigError, build
from docker_registry_wsgi.auth.htpasswd import HtpasswdAuth
from docker_registry_wsgi.auth.issuer import TokenIssuer
from docker_registry_wsgi.auth.throttle import ADDRESS_LIMIT, LIMIT, WINDOW, FailureThrottle
from docker_registry_wsgi.auth.token import TokenAuth

from .conftest import basic, make_request


def parse(argv: list[str], environ: dict[str, str] | None = None) -> argparse.Namespace:
    return options.parse(OPTIONS, argv, environ or {})


def test_defaults_are_no_auth() -> None:
    ns = parse([])
    assert ns.auth == "none" and ns.token_path == "/token"
    auth, apps = build(ns)
    assert isinstance(auth, AllowAll) and apps == {}


def test_read_only_is_no_auth_and_refuses_access_rules(tmp_path: Path) -> None:
    """``--auth read-only`` is ``--auth none`` (the server adds ``--read-only``): access rules
    with it are an error, no longer silently ignored."""
    auth, apps = build(parse(["--auth", "read-only"]))
    assert isinstance(auth, AllowAll) and apps == {}
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"repositories": ["*"], "users": ["*"], "actions": ["pull"]}]}))
    with pytest.raises(ConfigError, match="--access-rules needs --auth htpasswd or --auth token, not --auth read-only"):
        build(parse(["--auth", "read-only", "--access-rules", str(rules)]))


def test_environment_defaults(tmp_path: Path) -> None:
    for name in ("x", "a.pem", "b.pem"):
        (tmp_path / name).write_text("")
    env = {"REGISTRY_AUTH": "htpasswd", "REGISTRY_HTPASSWD": str(tmp_path / "x"), "REGISTRY_TOKEN_SERVICE": "svc",
           "REGISTRY_TOKEN_PATH": "/auth",
           "REGISTRY_TOKEN_PUBLIC_KEY": f"{tmp_path / 'a.pem'}:{tmp_path / 'b.pem'}",
           "REGISTRY_TOKEN_EXPIRY": "120"}
    ns = parse([], env)
    assert (ns.auth, ns.htpasswd, ns.token_service, ns.token_path, ns.token_expiry) == (
        "htpasswd", str(tmp_path / "x"), "svc", "/auth", 120)
    assert ns.token_public_key == [str(tmp_path / "a.pem"), str(tmp_path / "b.pem")]
    assert parse(["--auth", "none"], env).auth == "none"  # the command line wins
    # Flags replace the variable's list, they do not add to it.
    assert parse(["--token-public-key", str(tmp_path / "x")], env).token_public_key == [str(tmp_path / "x")]


def test_htpasswd_with_rules(htpasswd_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"repositories": ["team/*"], "users": ["alice"], "actions": ["pull"]}]}))
    auth, apps = build(parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path), "--access-rules", str(rules)]))
    assert isinstance(auth, HtpasswdAuth) and apps == {}
    assert auth.authorize(make_request(basic("alice", "wonderland")), [Access.repository("team/a", "pull")]) == "alice"


@pytest.mark.parametrize("argv,message", [
    (["--auth", "htpasswd"], "--htpasswd is required"),
    (["--auth", "token"], "--token-public-key"),
])
def test_incomplete_set_ups_fail_at_start(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build(parse(argv))


def test_access_rules_need_an_auth_scheme_with_users(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"rules": [{"repositories": ["*"], "users": ["*"], "actions": ["pull"]}]}))
    with pytest.raises(ConfigError, match="needs --auth htpasswd"):
        build(parse(["--access-rules", str(rules)]))


@pytest.mark.parametrize("argv,message", [
    (["--htpasswd", "/nonexistent"], "--htpasswd /nonexistent: no such file"),
    (["--token-public-key", "/nonexistent.pem"], "--token-public-key /nonexistent.pem: no such file"),
    (["--access-rules", "/"], "--access-rules /: not a file"),
])
def test_missing_files_are_refused_when_read(argv: list[str], message: str) -> None:
    """Files the settings name are checked by the reader, in one line naming the setting."""
    with pytest.raises(options.OptionErrors) as caught:
        parse(argv)
    assert str(caught.value) == message


def test_bad_rules_file_is_refused_when_read(htpasswd_path: Path, tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('{"rules": [{"actions": ["fly"]}]}')
    with pytest.raises(options.OptionErrors) as caught:
        parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path), "--access-rules", str(rules)])
    line = str(caught.value)
    assert line.startswith(f"--access-rules {rules}: ") and "unknown action" in line and "\n" not in line


def test_token_with_external_issuer(write_key: Callable[..., Path], rsa_key: Any) -> None:
    pem = write_key(rsa_key, "issuer.pem")
    with pytest.raises(ConfigError, match="--token-realm"):
        build(parse(["--auth", "token", "--token-public-key", str(pem)]))
    auth, apps = build(parse(["--auth", "token", "--token-public-key", str(pem),
                              "--token-realm", "https://auth.example/token"]))
    assert isinstance(auth, TokenAuth) and apps == {} and auth.realm == "https://auth.example/token"


def test_token_with_built_in_issuer(write_key: Callable[..., Path], ec_key: Any, htpasswd_path: Path) -> None:
    key = write_key(ec_key, "signing.pem", private=True)
    with pytest.raises(ConfigError, match="--htpasswd"):
        build(parse(["--auth", "token", "--token-signing-key", str(key)]))
    with pytest.raises(ConfigError, match="path of its own"):
        build(parse(["--auth", "token", "--token-signing-key", str(key), "--htpasswd", str(htpasswd_path),
                     "--token-path", "/v2/token"]))
    auth, apps = build(parse(["--auth", "token", "--token-signing-key", str(key), "--htpasswd",
                              str(htpasswd_path), "--token-service", "svc", "--token-path", "auth/"]))
    assert isinstance(auth, TokenAuth) and auth.realm == "/auth" and auth.service == "svc"
    issuer = apps["/auth"]
    assert isinstance(issuer, TokenIssuer)
    res = webtest.TestApp(issuer).get("/", {"service": "svc", "scope": "repository:a:pull"},
                                      headers={"Authorization": basic("alice", "wonderland")})
    identity = auth.identity(res.json["token"])
    assert identity.subject == "alice" and identity.allows(Access.repository("a", "pull"))


def test_signing_key_that_is_public(write_key: Callable[..., Path], ec_key: Any, htpasswd_path: Path) -> None:
    key = write_key(ec_key, "signing.pem")
    with pytest.raises(ConfigError, match="cannot load a private key"):
        build(parse(["--auth", "token", "--token-signing-key", str(key), "--htpasswd", str(htpasswd_path)]))


def test_help_mentions_every_environment_variable() -> None:
    parser = argparse.ArgumentParser()
    options.add_to_parser(parser, OPTIONS)
    text = parser.format_help()
    for name in ("REGISTRY_AUTH", "REGISTRY_HTPASSWD", "REGISTRY_ACCESS_RULES", "REGISTRY_TOKEN_REALM",
                 "REGISTRY_TOKEN_SERVICE", "REGISTRY_TOKEN_ISSUER", "REGISTRY_TOKEN_PUBLIC_KEY",
                 "REGISTRY_TOKEN_SIGNING_KEY", "REGISTRY_TOKEN_PATH", "REGISTRY_AUTH_FAILURE_LIMIT",
                 "REGISTRY_AUTH_FAILURE_ADDRESS_LIMIT", "REGISTRY_AUTH_FAILURE_WINDOW"):
        assert name in text


def test_failure_throttle_defaults_and_options(htpasswd_path: Path) -> None:
    auth, _ = build(parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path)]))
    assert isinstance(auth, HtpasswdAuth) and isinstance(auth.throttle, FailureThrottle)
    assert (auth.throttle.limit, auth.throttle.address_limit, auth.throttle.window) == (
        LIMIT, ADDRESS_LIMIT, WINDOW)
    env = {"REGISTRY_AUTH_FAILURE_LIMIT": "3", "REGISTRY_AUTH_FAILURE_ADDRESS_LIMIT": "0",
           "REGISTRY_AUTH_FAILURE_WINDOW": "30"}
    auth, _ = build(parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path)], env))
    assert isinstance(auth, HtpasswdAuth) and auth.throttle is not None
    assert (auth.throttle.limit, auth.throttle.address_limit, auth.throttle.window) == (3, 0, 30.0)
    auth, _ = build(parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path), "--auth-failure-limit", "0",
                           "--auth-failure-address-limit", "0"], env))
    assert isinstance(auth, HtpasswdAuth) and auth.throttle is not None and not auth.throttle.enabled


@pytest.mark.parametrize("option,value", [("--auth-failure-limit", "-1"), ("--auth-failure-address-limit", "-2"),
                                          ("--auth-failure-window", "0")])
def test_bad_failure_throttle_settings_fail_at_start(htpasswd_path: Path, option: str, value: str) -> None:
    with pytest.raises(options.OptionErrors, match=f"^{option} {value}: expected "):
        parse(["--auth", "htpasswd", "--htpasswd", str(htpasswd_path), option, value])


def test_built_in_issuer_is_throttled_and_binds_refresh_tokens(write_key: Callable[..., Path], ec_key: Any,
                                                               htpasswd_path: Path) -> None:
    key = write_key(ec_key, "signing.pem", private=True)
    _, apps = build(parse(["--auth", "token", "--token-signing-key", str(key), "--htpasswd", str(htpasswd_path),
                           "--token-service", "svc", "--auth-failure-limit", "4"]))
    issuer = apps["/token"]
    assert isinstance(issuer, TokenIssuer)
    assert issuer.throttle is not None and issuer.throttle.limit == 4
    assert issuer.credential_stamp is not None and issuer.binding("alice") is not None
