"""Fixtures for the framework tests: the example sites' folder, an OCI image, failure reports.

The end-to-end tests serve an example site (``examples/``) with gunicorn on a free loopback
port and drive it with skopeo. A failing test gets the site's server log and every skopeo
command with its output in its report.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.support.clients import Skopeo
from tests.support.oci_images import OciImage, build_multiplatform_image
from tests.support.servers import ServerProcess
from tests.support.tools import require_module, require_tool

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

_TRANSCRIPT = pytest.StashKey[list[str]]()


def gunicorn_command(app: str, *options: str) -> list[str]:
    """The examples' documented command: ``gunicorn -k gthread ... <app>`` on ``{port}``.

    Run as ``python -m gunicorn`` so that the server uses this interpreter and its packages.
    """
    return [sys.executable, "-m", "gunicorn", "-k", "gthread", "--workers", "2", "--threads", "4",
            "--bind", "127.0.0.1:{port}", "--graceful-timeout", "5", *options, app]


def serve_site(command: list[str], log_path: Path, env: dict[str, str] | None = None,
               cwd: Path = EXAMPLES) -> ServerProcess:
    """A started :class:`ServerProcess` for an example site; ready when ``/`` answers."""
    require_module("gunicorn", "pip install gunicorn")
    return ServerProcess(command, env=env, cwd=cwd, log_path=log_path, ready_path="/",
                         show_log_on_stop=False).start()


@pytest.fixture(scope="session")
def oci_image(tmp_path_factory: pytest.TempPathFactory) -> OciImage:
    """A multi-platform OCI image (index + linux/amd64 + linux/arm64) in a layout, tag ``v1``."""
    return build_multiplatform_image(tmp_path_factory.mktemp("layout") / "image", tag="v1")


@pytest.fixture
def transcript(request: pytest.FixtureRequest) -> list[str]:
    """Client commands and output of the current test, shown in its report if it fails."""
    return request.node.stash.setdefault(_TRANSCRIPT, [])


@pytest.fixture
def skopeo(site: ServerProcess, transcript: list[str]) -> Skopeo:
    """skopeo aimed at the module's ``site``; skips locally / fails under CI when missing."""
    return Skopeo(require_tool("skopeo", "apt-get install -y skopeo"), site.hostport, transcript)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Add the site's server log and the skopeo transcript to a failing test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    site = getattr(item, "funcargs", {}).get("site")
    if isinstance(site, ServerProcess):
        report.sections.append(("site server log", site.log_text()[-20000:]))
    transcript = item.stash.get(_TRANSCRIPT, [])
    if transcript:
        report.sections.append(("client transcript", "\n".join(transcript)[-30000:]))
