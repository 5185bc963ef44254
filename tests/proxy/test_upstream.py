"""The upstream client against real registries on loopback: Basic auth (htpasswd), the Docker
token flow through the built-in issuer (docker-token-auth-token.md, "How to authenticate"),
cached tokens, redirects that leave the host, connection reuse, errors, Docker Hub names.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth import config as auth_config
from docker_registry_wsgi.auth.token import bearer_token
from docker_registry_wsgi.errors import NotFound
from docker_registry_wsgi.middleware import RegistryMiddleware
from docker_registry_wsgi.options import parse
from docker_registry_wsgi.proxy import Upstream, UpstreamError
from docker_registry_wsgi.proxy.upstream import _parse_token_response
from docker_registry_wsgi.responses import error_reply
from docker_registry_wsgi.storage import MemoryStorage

from .upstreams import FakeClock, UpstreamSite


def _htpasswd(path: Path) -> Path:
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    path.write_text(f"mirror:{hashed}\n")
    return path


def _not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    return error_reply(NotFound())(environ, start_response)


def _auth_site(args: list[str]) -> UpstreamSite:
    """A registry with the auth the ``serve`` options ``args`` describe, token issuer included."""
    auth, extra = auth_config.build(parse(auth_config.OPTIONS, args))
    registry = Registry(MemoryStorage(), auth=auth)
    app = RegistryMiddleware(_not_found, registry, extra) if extra else registry
    site = UpstreamSite(app, registry=Registry(registry.storage))
    return site.start()


@pytest.fixture
def basic_site(tmp_path: Path) -> Iterator[UpstreamSite]:
    site = _auth_site(["--auth", "htpasswd", "--htpasswd", str(_htpasswd(tmp_path / "users"))])
    yield site
    site.stop()


@pytest.fixture
def token_site(tmp_path: Path) -> Iterator[UpstreamSite]:
    """A registry with token auth and its built-in issuer at /token (rules: anonymous may pull public/*)."""
    key = tmp_path / "signing.pem"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"anonymous_pull": ["public/*"],
                                 "rules": [{"repositories": ["*"], "users": ["mirror"], "actions": ["pull"]}]}))
    site = _auth_site(["--auth", "token", "--token-signing-key", str(key), "--htpasswd",
                       str(_htpasswd(tmp_path / "users")), "--access-rules", str(rules)])
    yield site
    site.stop()


def test_basic_credentials_answer_the_challenge_then_go_first(basic_site: UpstreamSite) -> None:
    image = basic_site.seed.push_image("lib/app", "v1")
    upstream = Upstream(basic_site.url, username="mirror", password="s3cret")
    assert upstream.get_manifest("lib/app", "v1", 1 << 20).body == image.body
    assert upstream.head_manifest("lib/app", "v1").digest == image.digest
    # The first request learnt the scheme from a 401; the second sent credentials at once.
    assert [m for m, _ in basic_site.requests] == ["GET", "GET", "HEAD"]


def test_wrong_or_missing_basic_credentials_are_named(basic_site: UpstreamSite) -> None:
    basic_site.seed.push_image("lib/app", "v1")
    with pytest.raises(UpstreamError, match="refused our credentials") as wrong:
        Upstream(basic_site.url, username="mirror", password="nope").head_manifest("lib/app", "v1")
    assert wrong.value.denied
    with pytest.raises(UpstreamError, match="none are configured"):
        Upstream(basic_site.url).head_manifest("lib/app", "v1")


def test_token_flow_fetches_one_token_per_repository_and_reuses_it(token_site: UpstreamSite) -> None:
    image = token_site.seed.push_image("lib/app", "v1")
    blob = next(iter(image.blobs))
    clock = FakeClock()
    upstream = Upstream(token_site.url, username="mirror", password="s3cret", clock=clock)
    assert upstream.get_manifest("lib/app", "v1", 1 << 20).body == image.body
    upstream.head_manifest("lib/app", image.digest)
    assert upstream.head_blob("lib/app", blob) == len(image.blobs[blob])
    stream = upstream.open_blob("lib/app", blob)
    assert stream.read(1 << 20) == image.blobs[blob]
    stream.close()
    assert token_site.count("GET", "/token") == 1
    assert token_site.count("GET", "/v2/lib/app/manifests/v1") == 2  # challenged once, then with the token
    token_site.seed.push_image("lib/other", "v1")
    upstream.head_manifest("lib/other", "v1")
    assert token_site.count("GET", "/token") == 2  # a new scope, fetched before asking (no 401)
    assert token_site.count("HEAD", "/v2/lib/other/") == 1
    clock.advance(301)  # the issuer's tokens live 300 s
    upstream.head_manifest("lib/app", "v1")
    assert token_site.count("GET", "/token") == 3


def test_anonymous_token_for_public_images(token_site: UpstreamSite) -> None:
    image = token_site.seed.push_image("public/app", "v1")
    upstream = Upstream(token_site.url)
    assert upstream.get_manifest("public/app", "v1", 1 << 20).body == image.body
    token_site.seed.push_image("private/app", "v1")
    with pytest.raises(UpstreamError) as denied:
        upstream.head_manifest("private/app", "v1")
    assert denied.value.status == 401


def test_wrong_token_credentials_are_named(token_site: UpstreamSite) -> None:
    token_site.seed.push_image("lib/app", "v1")
    with pytest.raises(UpstreamError, match="credentials were refused"):
        Upstream(token_site.url, username="mirror", password="wrong").head_manifest("lib/app", "v1")


def test_redirect_to_another_host_drops_authorization(basic_site: UpstreamSite) -> None:
    """Docker Hub answers a blob GET with a redirect to a CDN; our credentials must not follow."""
    data = b"bytes the CDN holds"
    digest = basic_site.seed.push_blob("lib/app", data)
    seen: list[str | None] = []

    def cdn(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        seen.append(environ.get("HTTP_AUTHORIZATION"))
        start_response("200 OK", [("Content-Length", str(len(data)))])
        return [data]

    cdn_site = UpstreamSite(cdn).start()
    inner = basic_site.app

    def redirecting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("HTTP_AUTHORIZATION") and "/blobs/" in environ["PATH_INFO"] and environ["REQUEST_METHOD"] == "GET":
            start_response("307 Temporary Redirect", [("Location", f"{cdn_site.url}/signed/{digest}"),
                                                      ("Content-Length", "0")])
            return []
        return inner(environ, start_response)

    basic_site.app = redirecting
    try:
        stream = Upstream(basic_site.url, username="mirror", password="s3cret").open_blob("lib/app", digest)
        assert stream.length == len(data) and stream.read(1 << 20) == data
        stream.close()
    finally:
        cdn_site.stop()
    assert seen == [None]


class _KeepAlive(BaseHTTPRequestHandler):
    """An HTTP/1.1 server that keeps connections open (werkzeug's closes each one)."""

    protocol_version = "HTTP/1.1"
    connections: list[int] = []
    body = b'{"schemaVersion": 2}'

    def setup(self) -> None:
        super().setup()
        self.connections.append(self.client_address[1])

    def _answer(self, with_body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        if with_body:
            self.wfile.write(self.body)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._answer(True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


def test_connections_are_reused() -> None:
    _KeepAlive.connections = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _KeepAlive)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        upstream = Upstream(f"http://127.0.0.1:{server.server_port}")
        for _ in range(5):
            upstream.head_manifest("lib/app", "v1")
            assert upstream.get_manifest("lib/app", "v1", 1 << 20).body == _KeepAlive.body
        upstream.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_KeepAlive.connections) == 1


def test_error_answers_carry_status_code_and_retry_after() -> None:
    def limited(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = json.dumps({"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}).encode()
        start_response("429 Too Many Requests", [("Retry-After", "17"), ("Content-Length", str(len(body))),
                                                 ("Content-Type", "application/json")])
        return [body]

    site = UpstreamSite(limited).start()
    try:
        with pytest.raises(UpstreamError) as raised:
            Upstream(site.url).get_manifest("lib/app", "v1", 1 << 20)
    finally:
        site.stop()
    assert (raised.value.status, raised.value.code, raised.value.retry_after) == (429, "TOOMANYREQUESTS", "17")
    assert "slow down" in str(raised.value)


def test_unreachable_upstream() -> None:
    site = UpstreamSite(_not_found).start()
    url = site.url
    site.stop()
    with pytest.raises(UpstreamError, match="cannot reach") as raised:
        Upstream(url).head_blob("lib/app", "sha256:" + "0" * 64)
    assert raised.value.status is None


def test_docker_hub_names_and_host() -> None:
    hub = Upstream("https://docker.io")
    assert hub.url == "https://registry-1.docker.io"
    assert hub.upstream_name("alpine") == "library/alpine"
    assert hub.upstream_name("bitnami/redis") == "bitnami/redis"
    assert Upstream("https://ghcr.io").upstream_name("alpine") == "alpine"
    with pytest.raises(ValueError):
        Upstream("https://ghcr.io/v2/")


@settings(max_examples=200, deadline=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=40),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                     st.sampled_from(["token", "access_token", "expires_in", "x"]), inner, max_size=4),
                 max_leaves=8).map(lambda v: json.dumps(v).encode()),
))
def test_token_responses_parse_or_raise_upstream_error(body: bytes) -> None:
    try:
        token, lifetime = _parse_token_response(body, "https://upstream.example")
    except UpstreamError:
        return
    assert lifetime > 0
    assert bearer_token("Bearer " + token) == token  # a token we would send is well-formed


def test_token_response_forms() -> None:
    assert _parse_token_response(b'{"token": "abc.def", "expires_in": 600}', "u") == ("abc.def", 600)
    assert _parse_token_response(b'{"access_token": "abc"}', "u") == ("abc", 60)
    for bad in (b'{"token": "has space"}', b'{"token": ""}', b"[]", b"not json", b'{"token": 5}'):
        with pytest.raises(UpstreamError):
            _parse_token_response(bad, "u")


def test_concurrent_first_requests_both_answer_the_basic_challenge(basic_site: UpstreamSite) -> None:
    """Two requests sent before either learnt the scheme both get a 401, and both retry with it."""
    basic_site.seed.push_image("lib/app", "v1")
    holds = [basic_site.hold("HEAD", "/manifests/v1") for _ in range(2)]
    upstream = Upstream(basic_site.url, username="mirror", password="s3cret")
    results: list[object] = []

    def head() -> None:
        try:
            results.append(upstream.head_manifest("lib/app", "v1").digest)
        except UpstreamError as exc:
            results.append(exc)

    threads = [threading.Thread(target=head) for _ in range(2)]
    for thread in threads:
        thread.start()
    for hold in holds:
        hold.wait_reached()  # both sent without credentials
    for hold in holds:
        hold.release()
    for thread in threads:
        thread.join(30)
    assert len(results) == 2 and all(isinstance(r, str) for r in results), results
