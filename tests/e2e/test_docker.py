"""The docker daemon (Debian ``docker.io``) against the standalone server: push, pull and run.

A private ``dockerd`` (vfs storage, no iptables, no bridge: :mod:`tests.support.docker`) pushes a
one-file busybox image imported from a tar, forgets it, pulls it back and runs it with
``--network none``; then pushes it under a second name, which docker does by mounting the layer
from the first repository (Docker Registry HTTP API V2, "Cross Repository Blob Mount"), and
pulls that by digest. The standalone server runs on filesystem and S3 storage (the ``registry``
fixture); docker talks plain HTTP to registries on 127.0.0.0/8.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.support.docker import DockerDaemon, busybox_rootfs
from tests.support.servers import RegistryServer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerDaemon]:
    with DockerDaemon(tmp_path_factory.mktemp("dockerd")) as daemon:
        yield daemon


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return busybox_rootfs(tmp_path_factory.mktemp("busybox"))


def test_docker_push_pull_and_run(dockerd: DockerDaemon, registry: RegistryServer, rootfs: Path) -> None:
    image = f"{registry.hostport}/e2e/busybox:1"
    dockerd.docker("import", str(rootfs), image)
    pushed = dockerd.docker("push", image).stdout
    digest = pushed.split("digest: ")[1].split()[0]
    dockerd.docker("rmi", image)
    dockerd.docker("pull", image)
    assert dockerd.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", image).stdout.strip() \
        == f"{registry.hostport}/e2e/busybox@{digest}"
    ran = dockerd.docker("run", "--rm", "--network", "none", image, "/bin/busybox", "echo", "ran from the registry")
    assert ran.stdout.strip() == "ran from the registry"

    second = f"{registry.hostport}/e2e/copy:1"
    dockerd.docker("tag", image, second)
    dockerd.docker("push", second)
    assert "Mounted from e2e/busybox" in dockerd.transcript[-1]
    dockerd.docker("rmi", image, second)
    dockerd.docker("pull", f"{registry.hostport}/e2e/copy@{digest}")
    ran = dockerd.docker("run", "--rm", "--network", "none", f"{registry.hostport}/e2e/copy@{digest}",
                         "/bin/busybox", "echo", "by digest")
    assert ran.stdout.strip() == "by digest"
    log = registry.log_text()
    assert "Traceback" not in log and "error serving" not in log, log[-4000:]
