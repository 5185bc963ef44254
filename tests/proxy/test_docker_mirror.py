"""The docker daemon pulling through the cache as its ``registry-mirrors`` (docs/mirroring.rst).

docker sends Docker Hub names without a prefix (``library/bbtest``) to a mirror, so the cache
mirrors its upstream for every name (``--proxy-remote-url``). The upstream stands in for Docker
Hub: this registry with token auth and its built-in issuer. The daemon pulls
``bbtest:1`` (``docker.io/library/bbtest:1``): with no route to the real Docker Hub, only the
mirror can answer, and the cache's log shows it did; then the image runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.docker import DockerDaemon, busybox_rootfs

from .test_e2e import PASSWORD, USER, Upstream, _cache, _token_registry

pytestmark = pytest.mark.e2e


def test_docker_pulls_through_the_cache_as_its_registry_mirror(tmp_path: Path) -> None:
    rootfs = busybox_rootfs(tmp_path)
    with _token_registry(tmp_path / "upstream") as server:
        upstream = Upstream(server, server.url)
        remote = f"{upstream.cache_url},username={USER},password-env=UPSTREAM_PASSWORD"
        with _cache(tmp_path / "cache", remote=remote) as cache:
            with DockerDaemon(tmp_path / "dockerd", registry_mirrors=[cache.url]) as dockerd:
                pushed = f"{server.hostport}/library/bbtest:1"
                dockerd.docker("login", "--username", USER, "--password-stdin", server.hostport, input=PASSWORD)
                dockerd.docker("import", str(rootfs), pushed)
                digest = dockerd.docker("push", pushed).stdout.split("digest: ")[1].split()[0]
                dockerd.docker("rmi", pushed)
                dockerd.docker("pull", "bbtest:1")
                assert dockerd.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}",
                                      "bbtest:1").stdout.strip() == f"bbtest@{digest}"
                ran = dockerd.docker("run", "--rm", "--network", "none", "bbtest:1", "/bin/busybox", "echo", "mirrored")
                assert ran.stdout.strip() == "mirrored"
                server.stop()  # and with the upstream gone, the mirror still serves it
                dockerd.docker("rmi", "bbtest:1")
                dockerd.docker("pull", "bbtest:1")
            log = cache.log_text()
            assert '"GET /v2/library/bbtest/manifests/1 ' in log or '"HEAD /v2/library/bbtest/manifests/1 ' in log
            assert "Traceback" not in log, log[-4000:]
