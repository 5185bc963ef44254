"""The pull-through cache end to end: real upstreams on loopback, the cache as the shipped
``docker-registry-wsgi serve --proxy NAMESPACE=URL`` (or ``--config`` with ``[[proxy]]`` tables),
skopeo as the client.

Upstreams: a second instance of this registry with token auth and its built-in issuer (the
flow Docker Hub uses: a 401 with a Bearer challenge, a token from the realm for the repository's
pull scope, with Basic credentials), behind a counting proxy that sees every request the cache
makes; and the Debian ``docker-registry`` package (distribution 2.8.2) with htpasswd (Basic)
auth, a different implementation. The cache runs with two worker processes, so that concurrent
requests meet across processes too.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import bcrypt
import pytest
import requests

from tests.support.clients import ClientError, Skopeo
from tests.support.oci_images import OciImage, assert_same_image, build_multiplatform_image
from tests.support.proxy import RoundRobinProxy
from tests.support.servers import RegistryServer, ServerProcess, free_port
from tests.support.tools import require_tool

pytestmark = pytest.mark.e2e

USER, PASSWORD = "mirror", "s3cret"
MiB = 1 << 20


def _htpasswd(path: Path) -> Path:
    path.write_text(f"{USER}:" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode() + "\n")
    return path


@dataclass
class Upstream:
    """An upstream registry the tests push to directly and the cache reaches at ``cache_url``."""

    server: ServerProcess
    cache_url: str
    counter: RoundRobinProxy | None = None
    root: Path | None = None

    @property
    def hostport(self) -> str:
        return self.server.hostport


def _token_registry(base: Path) -> RegistryServer:
    openssl = require_tool("openssl", "apt-get install -y openssl")
    base.mkdir(parents=True, exist_ok=True)
    key = base / "signing.pem"
    subprocess.run([openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", str(key)], check=True, capture_output=True)
    return RegistryServer(base / "data", log_path=base / "registry.log", show_log_on_stop=False, extra_args=[
        "--workers", "1", "--auth", "token", "--token-signing-key", str(key),
        "--htpasswd", str(_htpasswd(base / "users.htpasswd"))])


@pytest.fixture(scope="module")
def token_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """This registry with token auth and the built-in issuer, behind a counting proxy."""
    with _token_registry(tmp_path_factory.mktemp("token-upstream")) as server:
        with RoundRobinProxy([server.hostport]) as counter:
            yield Upstream(server, counter.url, counter)


@pytest.fixture(scope="module")
def distribution_upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upstream]:
    """The Go reference registry (Debian docker-registry, distribution 2.8.2) with htpasswd auth."""
    binary = require_tool("docker-registry", "apt-get install -y docker-registry")
    base = tmp_path_factory.mktemp("distribution-upstream")
    port = free_port()
    config = base / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
        f"auth:\n  htpasswd:\n    realm: upstream\n    path: {_htpasswd(base / 'users.htpasswd')}\n"
        "health:\n  storagedriver:\n    enabled: false\n")
    with ServerProcess([binary, "serve", str(config)], port=port, ready_path="/v2/",
                       log_path=base / "registry.log", show_log_on_stop=False) as server:
        yield Upstream(server, server.url, root=base / "data")


def _cache(base: Path, *mirrors: str, remote: str | None = None, workers: int = 2,
           extra_args: Sequence[str] = ()) -> RegistryServer:
    """``serve`` with filesystem storage in ``base``, the given ``--proxy`` specs (and
    ``--proxy-remote-url remote``), the upstreams' password in ``UPSTREAM_PASSWORD``."""
    args = ["--workers", str(workers), "--threads", "16", "--access-log", *extra_args]
    for spec in mirrors:
        args += ["--proxy", spec]
    if remote is not None:
        args += ["--proxy-remote-url", remote]
    return RegistryServer(base, extra_args=args, env={"UPSTREAM_PASSWORD": PASSWORD},
                          log_path=base.parent / f"{base.name}.log", show_log_on_stop=False)


def _creds(name: str, upstream: Upstream, **settings: str) -> str:
    extra = "".join(f",{k}={v}" for k, v in settings.items())
    return f"{name}={upstream.cache_url},username={USER},password-env=UPSTREAM_PASSWORD{extra}"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def cache(cache_root: Path, token_upstream: Upstream, distribution_upstream: Upstream) -> Iterator[ServerProcess]:
    """The cache: ``tok`` and ``fresh`` (TTL 0) mirror the token upstream, ``dist`` distribution."""
    with _cache(cache_root, _creds("tok", token_upstream), _creds("fresh", token_upstream, ttl="0"),
                _creds("dist", distribution_upstream)) as server:
        yield server


@pytest.fixture(scope="module")
def skopeo_path() -> str:
    return require_tool("skopeo", "apt-get install -y skopeo")


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    return build_multiplatform_image(tmp_path_factory.mktemp("layout") / "image", tag="v1")


def _push(skopeo_path: str, upstream: Upstream, image: OciImage, repository: str, tag: str = "v1") -> None:
    Skopeo(skopeo_path, upstream.hostport).copy(
        image.reference, f"docker://{upstream.hostport}/{repository}:{tag}",
        "--all", "--preserve-digests", f"--dest-creds={USER}:{PASSWORD}")


def _pull(skopeo_path: str, cache: ServerProcess, reference: str, layout: Path, tag: str = "v1") -> None:
    Skopeo(skopeo_path, cache.hostport).copy(f"docker://{cache.hostport}/{reference}", f"oci:{layout}:{tag}", "--all")


def _clean(server: ServerProcess) -> None:
    log = server.log_text()
    assert "Traceback" not in log and "error serving" not in log, log[-6000:]


@pytest.mark.parametrize("namespace", ["tok", "dist"])
def test_skopeo_pulls_a_multiplatform_image_through_the_cache_byte_for_byte(
        namespace: str, request: pytest.FixtureRequest, cache: ServerProcess, skopeo_path: str,
        image: OciImage, tmp_path: Path) -> None:
    upstream: Upstream = request.getfixturevalue("token_upstream" if namespace == "tok" else "distribution_upstream")
    _push(skopeo_path, upstream, image, "lib/app")
    _pull(skopeo_path, cache, f"{namespace}/lib/app:v1", tmp_path / "first")
    assert assert_same_image(image.path, "v1", tmp_path / "first", "v1") == len(image.blobs)
    _pull(skopeo_path, cache, f"{namespace}/lib/app:v1", tmp_path / "second")  # now from the cache
    assert_same_image(image.path, "v1", tmp_path / "second", "v1")
    _clean(cache)


def test_token_flow_and_single_fetches_seen_at_the_upstream(
        cache: ServerProcess, token_upstream: Upstream, skopeo_path: str, tmp_path: Path) -> None:
    assert token_upstream.counter is not None
    image = build_multiplatform_image(tmp_path / "image", tag="v1", seed=31)  # nothing of it cached yet
    _push(skopeo_path, token_upstream, image, "lib/counted")
    before = list(token_upstream.counter.log)
    for n in range(3):
        _pull(skopeo_path, cache, "tok/lib/counted:v1", tmp_path / f"pull{n}")
    seen = token_upstream.counter.log[len(before):]
    assert any(m == "GET" and p.startswith("/token?") for m, p in seen)  # the Bearer flow
    for digest in image.blobs:
        gets = [p for m, p in seen if m == "GET" and p.endswith(digest)]
        assert len(gets) == 1, (digest, gets)  # every blob and manifest fetched once, in 3 pulls


def test_pull_works_with_the_upstream_stopped(tmp_path: Path, skopeo_path: str, image: OciImage) -> None:
    with _token_registry(tmp_path / "upstream") as server:
        upstream = Upstream(server, server.url)
        _push(skopeo_path, upstream, image, "lib/app")
        with _cache(tmp_path / "cache", _creds("tok", upstream, ttl="0")) as cache:
            _pull(skopeo_path, cache, "tok/lib/app:v1", tmp_path / "warm")
            server.stop()
            _pull(skopeo_path, cache, "tok/lib/app:v1", tmp_path / "offline")
            assert_same_image(image.path, "v1", tmp_path / "offline", "v1")
            assert "serving tok/lib/app:v1 from the cache" in cache.log_text()
            missing = requests.get(f"{cache.url}/v2/tok/lib/other/manifests/v1", timeout=60)
            assert missing.status_code == 502
            assert missing.json()["errors"][0]["code"] == "UNAVAILABLE"
            assert upstream.cache_url in missing.json()["errors"][0]["message"]
            _clean(cache)


def test_tag_moved_upstream_is_seen_after_its_ttl(cache: ServerProcess, token_upstream: Upstream,
                                                  skopeo_path: str, tmp_path: Path) -> None:
    """``tok`` has the default TTL (5 minutes), ``fresh`` a TTL of 0 over the same upstream."""
    old = build_multiplatform_image(tmp_path / "old", tag="v1", seed=21, big_layer_size=1000)
    new = build_multiplatform_image(tmp_path / "new", tag="v1", seed=22, big_layer_size=1000)
    _push(skopeo_path, token_upstream, old, "lib/moving")
    for namespace in ("tok", "fresh"):
        _pull(skopeo_path, cache, f"{namespace}/lib/moving:v1", tmp_path / f"{namespace}-before")
    _push(skopeo_path, token_upstream, new, "lib/moving")
    _pull(skopeo_path, cache, "tok/lib/moving:v1", tmp_path / "tok-after")
    _pull(skopeo_path, cache, "fresh/lib/moving:v1", tmp_path / "fresh-after")
    assert_same_image(old.path, "v1", tmp_path / "tok-after", "v1")  # within its TTL
    assert_same_image(new.path, "v1", tmp_path / "fresh-after", "v1")  # past its TTL


def test_concurrent_pulls_of_an_uncached_64_mib_blob_make_one_upstream_get(
        cache: ServerProcess, token_upstream: Upstream) -> None:
    assert token_upstream.counter is not None
    data = hashlib.sha256(b"big").digest() * (64 * MiB // 32)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    auth = (USER, PASSWORD)
    token = requests.get(f"{token_upstream.server.url}/token", params={
        "service": "docker-registry-wsgi", "scope": "repository:lib/big:pull,push"}, auth=auth, timeout=60).json()["token"]
    pushed = requests.post(f"{token_upstream.server.url}/v2/lib/big/blobs/uploads/?digest={digest}", data=data,
                           headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert pushed.status_code == 201, pushed.text
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(32)

    def pull() -> None:
        start.wait(60)
        hasher = hashlib.sha256()
        with requests.get(f"{cache.url}/v2/tok/lib/big/blobs/{digest}", stream=True, timeout=300) as response:
            assert response.status_code == 200, response.text[:300]
            for chunk in response.iter_content(1 << 20):
                hasher.update(chunk)
        with lock:
            results.append("sha256:" + hasher.hexdigest())

    threads = [threading.Thread(target=pull) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert results == [digest] * 32
    assert token_upstream.counter.count("GET", f"/blobs/{digest}") == 1
    _clean(cache)


def test_corrupted_upstream_blob_is_refused_and_not_stored(
        cache: ServerProcess, cache_root: Path, distribution_upstream: Upstream) -> None:
    data = hashlib.sha256(b"corrupt me").digest() * (3 * MiB // 32)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    base = f"http://{distribution_upstream.hostport}/v2/lib/bad/blobs/uploads/"
    started = requests.post(base, auth=(USER, PASSWORD), timeout=60)
    location = started.headers["Location"]
    finished = requests.put(location + ("&" if "?" in location else "?") + f"digest={digest}", data=data,
                            auth=(USER, PASSWORD), timeout=60)
    assert finished.status_code == 201, finished.text
    assert distribution_upstream.root is not None
    stored = distribution_upstream.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    received = 0
    with pytest.raises(requests.exceptions.RequestException):
        with requests.get(f"{cache.url}/v2/dist/lib/bad/blobs/{digest}", stream=True, timeout=120) as response:
            assert response.status_code == 200
            for chunk in response.iter_content(1 << 20):
                received += len(chunk)
    assert received < len(data)
    assert not (cache_root / "blobs/sha256" / digest[7:9] / digest[7:]).exists()
    assert "do not match" in cache.log_text()


def test_push_to_a_mirrored_namespace_is_refused(cache: ServerProcess, skopeo_path: str, image: OciImage) -> None:
    skopeo = Skopeo(skopeo_path, cache.hostport)
    with pytest.raises(ClientError, match="405|UNSUPPORTED|unsupported"):
        skopeo.copy(image.reference, skopeo.docker("tok/lib/pushed", "v1"), "--all")
    response = requests.put(f"{cache.url}/v2/tok/lib/pushed/manifests/v1", data=b"{}", timeout=60,
                            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert response.status_code == 405
    assert response.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert "PUT" not in response.headers["Allow"]
    # Beside the mirrors, ordinary repositories take pushes.
    skopeo.copy(image.reference, skopeo.docker("team/app", "v1"), "--all", "--preserve-digests")
    assert json.loads(skopeo.inspect_raw(skopeo.docker("team/app", "v1")))["mediaType"].endswith("index.v1+json")


def test_podman_style_mirror_with_a_namespace(cache: ServerProcess, token_upstream: Upstream,
                                              skopeo_path: str, image: OciImage, tmp_path: Path) -> None:
    """containers-registries.conf(5) as docs/mirroring.rst gives it for podman, CRI-O and skopeo:
    ``upstream.invalid/lib/app`` is pulled from ``<cache>/tok/lib/app``; the upstream host itself
    does not even resolve."""
    _push(skopeo_path, token_upstream, image, "lib/viaconf")
    conf = tmp_path / "registries.conf"
    conf.write_text('[[registry]]\nprefix = "upstream.invalid"\nlocation = "upstream.invalid"\n\n'
                    f'[[registry.mirror]]\nlocation = "{cache.hostport}/tok"\ninsecure = true\n')
    result = subprocess.run(
        [skopeo_path, "--registries-conf", str(conf), "--insecure-policy", "copy", "--all",
         "docker://upstream.invalid/lib/viaconf:v1", f"oci:{tmp_path / 'pulled'}:v1"],
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_same_image(image.path, "v1", tmp_path / "pulled", "v1")


def test_serve_with_proxy_tables_in_a_config_file(token_upstream: Upstream, skopeo_path: str,
                                                  image: OciImage, tmp_path: Path) -> None:
    """``serve --config registry.toml`` with a ``[[proxy]]`` table (credentials from the
    environment): skopeo pulls through it byte for byte, the start lines name the mirror, and the
    mirrored namespace stays read-only while other names take pushes."""
    _push(skopeo_path, token_upstream, image, "lib/fromfile")
    config = tmp_path / "registry.toml"
    config.write_text('proxy-ttl = "1h"\n\n[[proxy]]\nnamespace = "viafile"\n'
                      f'url = "{token_upstream.cache_url}"\nusername = "{USER}"\n'
                      'password_env = "UPSTREAM_PASSWORD"\nbudget = "1GiB"\n')
    with _cache(tmp_path / "cache", workers=1, extra_args=["--config", str(config)]) as cache:
        _pull(skopeo_path, cache, "viafile/lib/fromfile:v1", tmp_path / "pulled")
        assert assert_same_image(image.path, "v1", tmp_path / "pulled", "v1") == len(image.blobs)
        assert (f"mirrors: viafile/ -> {token_upstream.cache_url} (ttl 1h, budget 1 GiB, as {USER}), "
                "read-only") in cache.log_text()
        refused = requests.post(f"{cache.url}/v2/viafile/lib/fromfile/blobs/uploads/", timeout=60)
        assert refused.status_code == 405 and refused.json()["errors"][0]["code"] == "UNSUPPORTED"
        assert requests.post(f"{cache.url}/v2/team/app/blobs/uploads/", timeout=60).status_code == 202
        _clean(cache)


def test_serve_refuses_bad_mirror_settings_in_one_line(tmp_path: Path) -> None:
    """The real command: each bad mirror setting is one line naming it and exit status 2, before
    anything listens."""
    config = tmp_path / "registry.toml"
    config.write_text('[[proxy]]\nnamespace = "hub"\nurl = "https://registry-1.docker.io/v2/"\n')
    for argv, line in [
        (["--proxy", "hub"], "--proxy hub: expected NAMESPACE=URL[,key=value...]"),
        (["--config", str(config)], f"{config}: proxy: mirror hub: upstream 'https://registry-1.docker.io/v2/': "
                                    "give the registry's origin only"),
        (["--proxy", "a=http://127.0.0.1:9", "--proxy", "a=http://127.0.0.1:8"], "--proxy: namespace a is mirrored twice"),
    ]:
        result = subprocess.run([sys.executable, "-m", "docker_registry_wsgi", "serve", "--root", str(tmp_path / "data"),
                                 *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == 2, result.stderr
        assert result.stderr.startswith(f"docker-registry-wsgi: {line}") and result.stderr.count("\n") == 1, result.stderr
