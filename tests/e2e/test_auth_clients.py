"""skopeo against the standalone registry with auth on: HTTP Basic over an htpasswd file, and the
Docker token flow through the built-in issuer (docker-token-auth-token.md: the registry challenges,
skopeo fetches a token from the realm with its credentials, and retries).

The servers are started exactly as the docs (docs/auth-htpasswd.rst, docs/auth-token.rst) say,
with the signing key made by the ``openssl`` command the docs give. The rules allow anonymous
pulls of ``public/*``: skopeo without credentials answers the Basic challenge with an empty user
and password (``Basic Og==``), which the registry treats as anonymous.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def _bcrypt(user: str, password: str) -> str:
    return f"{user}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()


def _htpasswd(path: Path) -> Path:
    """alice (bcrypt, may do everything), bob and carol (bcrypt, pull only), erin (SHA-512-crypt,
    unsupported)."""
    lines = [_bcrypt("alice", "wonderland"), _bcrypt("bob", "builder"), _bcrypt("carol", "cheshire"),
             f"erin:{SHA512_CRYPT}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def _rules(path: Path) -> Path:
    path.write_text(json.dumps({
        "anonymous_pull": ["public/*"],
        "rules": [
            {"repositories": ["*"], "users": ["alice"], "actions": ["*"], "catalog": True},
            {"repositories": ["*"], "users": ["bob", "carol"], "actions": ["pull"]},
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
def token_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The token registry's folder: its users.htpasswd, rules, key and data."""
    return tmp_path_factory.mktemp("token-registry")


@pytest.fixture(scope="module")
def token_registry(token_base: Path) -> Iterator[RegistryServer]:
    openssl = require_tool("openssl", "apt-get install -y openssl")
    base = token_base
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


class _RecordAuthorization(BaseHTTPRequestHandler):
    """Answers everything with a Basic challenge and records the Authorization headers sent."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str | None]]

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.seen.append((self.path, self.headers.get("Authorization")))
        body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="recorder"')
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def test_skopeo_without_credentials_sends_empty_basic(skopeo_path: str) -> None:
    """What the anonymous-pull fix is for: skopeo answers a Basic challenge with ``Basic Og==``."""
    seen: list[tuple[str, str | None]] = []
    handler = type("Recorder", (_RecordAuthorization,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        skopeo = Skopeo(skopeo_path, f"127.0.0.1:{server.server_port}")
        result = skopeo.run("inspect", "--tls-verify=false", "--no-creds", "--raw",
                            skopeo.docker("public/app", "v1"), check=False)
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode != 0
    assert ("/v2/", None) in seen
    assert ("/v2/public/app/manifests/v1", "Basic Og==") in seen, seen


def test_anonymous_pull_from_htpasswd_registry(htpasswd_registry: RegistryServer, skopeo_path: str,
                                              oci_image: OciImage, tmp_path: Path) -> None:
    skopeo = _skopeo(skopeo_path, htpasswd_registry)
    skopeo.copy("--all", "--preserve-digests", "--dest-creds", "alice:wonderland",
                oci_image.reference, skopeo.docker("public/app", "v1"))
    skopeo.copy(skopeo.docker("public/app", "v1"), f"oci:{tmp_path / 'pulled'}:v1",
                "--all", "--preserve-digests", "--src-no-creds")
    assert_same_image(oci_image.path, oci_image.tag, tmp_path / "pulled", "v1")
    # Outside public/* and for pushes, the empty credentials get the challenge.
    private = skopeo.run("inspect", "--tls-verify=false", "--no-creds", "--raw", skopeo.docker("team/app", "v1"),
                         check=False)
    assert private.returncode != 0 and "unauthorized" in private.stderr.lower()
    push = skopeo.copy(oci_image.reference, skopeo.docker("public/anon", "v1"), "--dest-no-creds", check=False)
    assert push.returncode != 0 and "unauthorized" in push.stderr.lower()
    assert "malformed" not in htpasswd_registry.log_text()
    _assert_clean_log(htpasswd_registry)


def test_refresh_token_ends_when_the_password_changes(token_registry: RegistryServer, token_base: Path,
                                                     tmp_path: Path) -> None:
    """Over HTTP, two workers: each re-reads the htpasswd file and refuses the old refresh token."""
    url = f"{token_registry.url}/token"
    login = requests.post(url, data={"grant_type": "password", "username": "carol", "password": "cheshire",
                                     "service": "docker-registry-wsgi", "access_type": "offline",
                                     "client_id": "e2e"}, timeout=30)
    assert login.status_code == 200, login.text
    refresh = {"grant_type": "refresh_token", "refresh_token": login.json()["refresh_token"],
               "service": "docker-registry-wsgi", "client_id": "e2e", "scope": "repository:team/app:pull"}
    for _ in range(4):  # both workers accept it
        assert requests.post(url, data=refresh, timeout=30).status_code == 200
    path = token_base / "users.htpasswd"
    lines = [line for line in path.read_text().splitlines() if not line.startswith("carol:")]
    replacement = tmp_path / "users.htpasswd.new"
    replacement.write_text("\n".join(lines + [_bcrypt("carol", "queen-of-hearts")]) + "\n")
    os.replace(replacement, path)  # a new inode: every worker sees the change on its next stat
    for _ in range(4):
        res = requests.post(url, data=refresh, timeout=30)
        assert res.status_code == 400 and res.json()["error"] == "invalid_grant", res.text
    login = requests.post(url, data={"grant_type": "password", "username": "carol",
                                     "password": "queen-of-hearts", "service": "docker-registry-wsgi"},
                          timeout=30)
    assert login.status_code == 200
    _assert_clean_log(token_registry)
