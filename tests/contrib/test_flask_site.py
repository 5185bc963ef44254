"""The Flask example site (examples/flask_site) under gunicorn, with skopeo and the site's users."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Iterator

import pytest

from tests.contrib.conftest import EXAMPLES, gunicorn_command, serve_site
from tests.contrib.sites import Accounts, SiteContract
from tests.support.servers import ServerProcess
from tests.support.tools import require_module

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The site's configuration, as ``FLASK_*`` variables read by ``app.config.from_prefixed_env``."""
    require_module("flask", "pip install flask")
    base = tmp_path_factory.mktemp("flask_site")
    return {
        "FLASK_SITE_DATABASE": str(base / "users.sqlite3"),
        "FLASK_DOCKER_REGISTRY_ROOT": str(base / "registry"),
        "FLASK_SECRET_KEY": "test secret",
    }


@pytest.fixture(scope="module")
def accounts(site_env: dict[str, str]) -> Accounts:
    """Users made with the site's own command, ``flask --app flask_site add-user``."""
    made = Accounts(publisher=("pat", "pat-pw-1"), reader=("rita", "rita-pw-2"), member=("mo", "mo-pw-3"))
    for (name, password), role in zip((made.publisher, made.reader, made.member), ("publisher", "reader", "member")):
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "flask_site", "add-user", name, "--role", role,
             "--password", password],
            cwd=EXAMPLES, env={**os.environ, **site_env}, check=True, capture_output=True, timeout=60,
        )
    return made


@pytest.fixture(scope="module")
def site(site_env: dict[str, str], accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``gunicorn -k gthread 'flask_site:create_app()'``, run from ``examples/``."""
    log = tmp_path_factory.mktemp("flask_log") / "gunicorn.log"
    server = serve_site(gunicorn_command("flask_site:create_app()"), log, env=site_env)
    yield server
    server.stop(show_log=False)


@pytest.fixture(scope="module")
def host_page() -> str:
    return "<h1>Flask site</h1>"


class TestFlaskSite(SiteContract):
    def test_site_login_and_session_still_work(self, site: ServerProcess, accounts: Accounts) -> None:
        import requests

        with requests.Session() as browser:
            response = browser.post(site.url + "/login", data=dict(zip(("username", "password"), accounts.reader)),
                                    timeout=30)
            assert response.status_code == 200 and "Signed in as rita (reader)" in response.text
            assert browser.get(site.url + "/v2/", timeout=30).status_code == 401  # the cookie is no credential
            assert "Signed in as rita" in browser.get(site.url + "/", timeout=30).text
