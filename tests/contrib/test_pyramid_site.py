"""The Pyramid example site (examples/pyramid_site) under gunicorn --paste, with skopeo and its users."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.contrib.conftest import EXAMPLES, gunicorn_command, serve_site
from tests.contrib.sites import Accounts, SiteContract
from tests.support.servers import ServerProcess, free_port
from tests.support.tools import require_module

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site_ini(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example's ``site.ini`` with its files moved to a temporary folder, nothing else changed."""
    require_module("pyramid", "pip install pyramid")
    require_module("paste.deploy", "pip install PasteDeploy")
    base = tmp_path_factory.mktemp("pyramid_site")
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini.read(EXAMPLES / "pyramid_site" / "site.ini")
    assert ini["app:main"]["docker_registry.auth"] == "pyramid_site.users:make_registry_auth"
    ini["app:main"]["site.users_file"] = str(base / "users.json")
    ini["app:main"]["docker_registry.root"] = str(base / "registry")
    path = base / "site.ini"
    with open(path, "w") as f:
        ini.write(f)
    return path


@pytest.fixture(scope="module")
def accounts(site_ini: Path) -> Accounts:
    """Users made with the site's own command, ``python -m pyramid_site add``."""
    made = Accounts(publisher=("pat", "pat-pw-1"), reader=("rita", "rita-pw-2"), member=("mo", "mo-pw-3"))
    users_file = str(site_ini.parent / "users.json")
    for (name, password), groups in zip((made.publisher, made.reader, made.member),
                                        (["publishers"], ["readers"], [])):
        options = [arg for group in groups for arg in ("--group", group)]
        subprocess.run(
            [sys.executable, "-m", "pyramid_site", "--file", users_file, "add", name, *options],
            cwd=EXAMPLES, env={**os.environ, "SITE_PASSWORD": password}, check=True,
            capture_output=True, timeout=60,
        )
    return made


@pytest.fixture(scope="module")
def site(site_ini: Path, accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``gunicorn -k gthread --paste site.ini``, run from ``examples/``."""
    log = tmp_path_factory.mktemp("pyramid_log") / "gunicorn.log"
    server = serve_site(gunicorn_command("", "--paste", str(site_ini))[:-1], log)
    yield server
    server.stop(show_log=False)


@pytest.fixture(scope="module")
def host_page() -> str:
    return "<h1>Pyramid site</h1>"


class TestPyramidSite(SiteContract):
    def test_site_login_and_session_still_work(self, site: ServerProcess, accounts: Accounts) -> None:
        import requests

        with requests.Session() as browser:
            response = browser.post(site.url + "/login", data=dict(zip(("username", "password"), accounts.reader)),
                                    timeout=30)
            assert response.status_code == 200 and "Signed in as rita" in response.text
            assert browser.get(site.url + "/v2/", timeout=30).status_code == 401
            assert "Signed in as rita" in browser.get(site.url + "/", timeout=30).text


def test_pserve_starts_the_site_from_its_server_section(site_ini: Path, accounts: Accounts,
                                                       tmp_path: Path) -> None:
    """``PYTHONPATH=. pserve site.ini``, as Pyramid users start a site: the ``[server:main]``
    section runs gunicorn with this package's worker; the site and its registry answer."""
    import requests

    pserve = Path(sys.executable).with_name("pserve")
    if not pserve.exists():
        pytest.skip(f"no pserve beside {sys.executable}")
    ini = configparser.ConfigParser(interpolation=None)
    ini.optionxform = str  # type: ignore[assignment,method-assign]
    ini.read(site_ini)
    server = ini["server:main"]
    assert (server["use"], server["worker_class"]) == ("egg:gunicorn#main", "docker_registry_wsgi.worker.ThreadWorker")
    port = free_port()
    server["port"] = str(port)
    server["control_socket_disable"] = "true"  # gunicorn 27's one socket per user: tests run beside others
    copy = tmp_path / "site.ini"
    with open(copy, "w") as f:
        ini.write(f)
    root = Path(__file__).resolve().parents[2]
    process = ServerProcess([str(pserve), str(copy)], port=port, cwd=EXAMPLES, ready_path="/",
                            env={"PYTHONPATH": os.pathsep.join([".", str(root)])},
                            log_path=tmp_path / "pserve.log", show_log_on_stop=False)
    with process:
        assert "<h1>Pyramid site</h1>" in requests.get(process.url + "/", timeout=30).text
        assert requests.get(process.url + "/v2/", timeout=30).status_code == 401
        assert requests.get(process.url + "/v2/", auth=accounts.reader, timeout=30).status_code == 200
    log = process.log_text()
    assert "Using worker: docker_registry_wsgi.worker.ThreadWorker" in log and "Traceback" not in log
