"""skopeo against the standalone registry with auth on: HTTP Basic over an htpasswd file, and the
Docker token flow through the built-in issuer (docker-token-auth-token.md: the registry challenges,
skopeo fetches a token from the realm with its credentials, and retries).

The servers are started exactly as the docs (docs/auth-htpasswd.rst, docs/auth-token.rst) say,
with the signing key made by the ``openssl`` command the docs give.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Iterator

import bcrypt
import pytest
import requests

from tests.support.clients import Skopeo
from tests.support.oci_images import OciImage, assert_same_image
from tests.support.servers import RegistryServer
from tests.support.tools import require_tool

pytestmark = pytest.mark.e2e

SHA512_CRYPT = "$6$7UUz/l4GwUt7YUB7$z1DoFktyp1KUEv.td4ZG8Ihmj4tB15CJ8FSqXgm9l9Q0bJeB3x9SAh5w3L5ZiQM7f/9gI6c8PCAiDbLQd9hb20"


def _htpasswd(path: Path) -> Path:
    """alice (bcrypt, may do everything), bob (bcrypt, pull only), erin (SHA-512-crypt, unsupported)."""
    lines = [
        "alice:" + bcrypt.hashpw(b"wonderland", bcrypt.gensalt(rounds=5)).decode(),
        "bob:" + bcrypt.hashpw(b"builder", bcrypt.gensalt(rounds=5)).decode(),
        f"erin:{SHA512_CRYPT}",
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rules(path: Path) -> Path:
    path.write_text(json.dumps({
        "rules": [
            {"repositories": ["*"], "users": ["alice"], "actions": ["*"], "catalog": True},
            {"repositories": ["*"], "users": ["bob"], "actions": ["pull"]},
        ],
    }))
    return path


@pytest.fixture(scope="module")
def skopeo_path() -> str:
    return require_tool("skopeo", "apt-get install -y skopeo")


@pytest.fixture(scope="module")
def htpasswd_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    base = tmp_path_factory.mktemp("htpasswd-registry")
    args = ["--auth", "htpasswd", "--htpasswd", str(_htpasswd(base / "users.htpasswd")),
            "--access-rules", str(_rules(base / "rules.json")), "--workers", "1"]
    with RegistryServer(base / "data", extra_args=args, log_path=base / "registry.log") as server:
        yield server


@pytest.fixture(scope="module")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    openssl = require_tool("openssl", "apt-get install -y openssl")
    base = tmp_path_factory.mktemp("token-registry")
    key = base / "token-signing.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(key)], check=True, capture_output=True)
    env = {"REGISTRY_AUTH": "token", "REGISTRY_TOKEN_SIGNING_KEY": str(key),
           "REGISTRY_HTPASSWD": str(_htpasswd(base / "users.htpasswd")),
           "REGISTRY_ACCESS_RULES": str(_rules(base / "rules.json")), "REGISTRY_WORKERS": "2"}
    with RegistryServer(base / "data", env=env, log_path=base / "registry.log") as server:
        yield server


def _skopeo(path: str, server: RegistryServer) -> Skopeo:
    return Skopeo(path, server.hostport)


def _assert_clean_log(server: RegistryServer) -> None:
    log = server.log_text()
    assert "Traceback" not in log and "error serving" not in log, log[-4000:]


@pytest.mark.parametrize("scheme", ["htpasswd", "token"])
def test_push_and_pull_with_creds(scheme: str, request: pytest.FixtureRequest, skopeo_path: str,
                                  oci_image: OciImage, tmp_path: Path) -> None:
    server: RegistryServer = request.getfixturevalue(f"{scheme}_registry")
    skopeo = _skopeo(skopeo_path, server)
    skopeo.copy("--all", "--preserve-digests", "--dest-creds", "alice:wonderland",
                oci_image.reference, skopeo.docker("team/app", "v1"))
    # bob may pull...
    skopeo.copy("--all", "--preserve-digests", "--src-creds", "bob:builder",
                skopeo.docker("team/app", "v1"), f"oci:{tmp_path / 'pulled'}:v1")
    assert_same_image(oci_image.path, oci_image.tag, tmp_path / "pulled", "v1")
    tags = json.loads(skopeo.run("list-tags", "--tls-verify=false", "--creds", "bob:builder",
                                 skopeo.docker("team/app")).stdout)
    assert tags["Tags"] == ["v1"]
    # ...but not push.
    result = skopeo.copy("--dest-creds", "bob:builder", oci_image.reference,
                         skopeo.docker("team/bob-was-here", "v1"), check=False)
    assert result.returncode != 0
    assert "denied" in result.stderr.lower() or "unauthorized" in result.stderr.lower()
    if scheme == "token":  # the flow went through the issuer, which logs each grant
        assert "issued token for 'alice'" in server.log_text()
        assert "issued token for 'bob'" in server.log_text()
    _assert_clean_log(server)


@pytest.mark.parametrize("scheme", ["htpasswd", "token"])
@pytest.mark.parametrize("creds", [None, "alice:wrong", "mallory:wonderland"])
def test_wrong_or_missing_creds_fail_cleanly(scheme: str, creds: str | None, request: pytest.FixtureRequest,
                                             skopeo_path: str, oci_image: OciImage) -> None:
    server: RegistryServer = request.getfixturevalue(f"{scheme}_registry")
    skopeo = _skopeo(skopeo_path, server)
    options = ("--dest-creds", creds) if creds else ("--dest-no-creds",)
    result = skopeo.copy(*options, oci_image.reference, skopeo.docker("team/intruder", "v1"), check=False)
    assert result.returncode != 0
    message = result.stderr.lower()
    assert "unauthorized" in message or "authentication required" in message or "invalid username" in message, \
        result.stderr[-2000:]
    # Nothing was written: no tag exists for alice to see either.
    check = skopeo.run("list-tags", "--tls-verify=false", "--creds", "alice:wonderland",
                       skopeo.docker("team/intruder"), check=False)
    assert check.returncode != 0 or json.loads(check.stdout)["Tags"] == []
    _assert_clean_log(server)


def test_login_and_authfile(htpasswd_registry: RegistryServer, token_registry: RegistryServer,
                            skopeo_path: str, tmp_path: Path) -> None:
    for server in (htpasswd_registry, token_registry):
        authfile = tmp_path / f"auth-{server.port}.json"
        skopeo = _skopeo(skopeo_path, server)
        bad = skopeo.run("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "alice", "-p", "nope",
                         server.hostport, check=False)
        assert bad.returncode != 0
        skopeo.run("login", "--tls-verify=false", "--authfile", str(authfile), "-u", "alice", "-p", "wonderland",
                   server.hostport)
        assert server.hostport in json.loads(authfile.read_text())["auths"]


def test_unsupported_hash_form_is_named_in_the_log(htpasswd_registry: RegistryServer, skopeo_path: str) -> None:
    skopeo = _skopeo(skopeo_path, htpasswd_registry)
    result = skopeo.run("list-tags", "--tls-verify=false", "--creds", "erin:secret",
                        skopeo.docker("team/app"), check=False)
    assert result.returncode != 0
    log = htpasswd_registry.log_text()
    assert "erin" in log and "sha512-crypt" in log and "htpasswd -B" in log


def test_token_challenge_points_at_the_issuer(token_registry: RegistryServer) -> None:
    res = requests.get(f"{token_registry.url}/v2/team/app/tags/list", timeout=30)
    assert res.status_code == 401
    challenge = res.headers["WWW-Authenticate"]
    assert challenge.startswith(f'Bearer realm="{token_registry.url}/token",service="docker-registry-wsgi"')
    assert 'scope="repository:team/app:pull"' in challenge
    token = requests.get(f"{token_registry.url}/token", params={"service": "docker-registry-wsgi",
                         "scope": "repository:team/app:pull"}, auth=("bob", "builder"), timeout=30).json()
    assert token["expires_in"] >= 60 and token["issued_at"]
    res = requests.get(f"{token_registry.url}/v2/team/app/tags/list",
                       headers={"Authorization": f"Bearer {token['token']}"}, timeout=30)
    assert res.status_code in (200, 404)  # 404 when the push test has not run first
