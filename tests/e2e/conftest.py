"""Fixtures for end-to-end tests: the standalone registry, an OCI layout, skopeo and oras clients.

The registry runs as ``python -m docker_registry_wsgi serve`` on a free loopback port with a
temporary storage folder (one per test module). A failing test gets the part of the registry's
log written during that test, and every client command with its output, in its report.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import pytest

from tests.support.clients import OrasClient, Skopeo
from tests.support.oci_images import OciImage, build_multiplatform_image
from tests.support.servers import RegistryServer
from tests.support.tools import require_module, require_tool

_LOG_OFFSET = pytest.StashKey[int]()
_TRANSCRIPT = pytest.StashKey[list[str]]()


@pytest.fixture(scope="module", params=["filesystem", "s3"])
def registry(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """The standalone registry on empty storage: a temporary folder, then an S3 bucket prefix.

    Two worker processes, so that consecutive requests of one upload land on different
    processes (upload state must live in the storage); ``--access-log`` for the test reports.
    The S3 flavour runs on the session's SeaweedFS (issue 5: the client tests pass on S3 too).
    """
    base = tmp_path_factory.mktemp(f"registry-{request.param}")
    storage_args: list[str] = []
    if request.param == "s3":
        storage_args = request.getfixturevalue("s3_bucket").server_args("e2e-" + base.name)
    with RegistryServer(base / "data", extra_args=["--workers", "2", "--access-log", *storage_args],
                        log_path=base / "registry.log", show_log_on_stop=False) as server:
        yield server


@pytest.fixture(autouse=True)
def _registry_log_section(request: pytest.FixtureRequest) -> Iterator[None]:
    """Remember where the registry log stood when the test began (see the report hook)."""
    if "registry" in request.fixturenames:
        server: RegistryServer = request.getfixturevalue("registry")
        request.node.stash[_LOG_OFFSET] = len(server.log_text())
    request.node.stash[_TRANSCRIPT] = []
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Add the registry log of the test and the client transcript to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    server = getattr(item, "funcargs", {}).get("registry")
    if isinstance(server, RegistryServer):
        offset = item.stash.get(_LOG_OFFSET, 0)
        report.sections.append(("registry log during the test", server.log_text()[offset:][-20000:]))
    transcript = item.stash.get(_TRANSCRIPT, [])
    if transcript:
        report.sections.append(("client transcript", "\n".join(transcript)[-30000:]))


@pytest.fixture(scope="module")
def oci_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    """A multi-platform OCI image (index + linux/amd64 + linux/arm64) in a layout, tag ``v1``."""
    return build_multiplatform_image(tmp_path_factory.mktemp("layout") / "image", tag="v1")


@pytest.fixture
def skopeo(registry: RegistryServer, request: pytest.FixtureRequest) -> Skopeo:
    """A :class:`Skopeo` for ``registry``; skips locally / fails under CI when skopeo is missing."""
    path = require_tool("skopeo", "apt-get install -y skopeo")
    return Skopeo(path, registry.hostport, request.node.stash[_TRANSCRIPT])


@pytest.fixture
def oras_client(registry: RegistryServer, request: pytest.FixtureRequest) -> OrasClient:
    """An ``oras.provider.Registry`` talking plain HTTP (``insecure=True``) to ``registry``."""
    require_module("oras", "pip install oras")
    import oras.provider

    client = oras.provider.Registry(hostname=registry.hostport, insecure=True)
    transcript: list[str] = request.node.stash[_TRANSCRIPT]

    def record(response: Any, *args: Any, **kwargs: Any) -> None:
        req = response.request
        # Hooks run before requests reads the body; read it only for errors (small JSON).
        body = response.content[:2000] if response.status_code >= 400 else b"<body not recorded>"
        transcript.append(f"{req.method} {req.url}\n  request headers: {dict(req.headers)}\n"
                          f"  -> {response.status_code} {dict(response.headers)}\n  {body!r}")

    client.session.hooks["response"].append(record)
    return OrasClient(client, registry.hostport, transcript)


@pytest.fixture
def http_get(registry: RegistryServer) -> Callable[..., Any]:
    """``http_get(path, method="GET", headers=None)``: a raw request to the registry (requests)."""
    import requests

    def get(path: str, method: str = "GET", headers: dict[str, str] | None = None) -> Any:
        return requests.request(method, registry.url + path, headers=headers or {}, timeout=60)

    return get
