"""The Django example site (examples/django_site) under gunicorn, with skopeo and Django users.

The users are Django users; what they may do comes from Django permissions given through a
group (the publisher), from membership of a group named in settings (the reader), or nothing
(the member): ``docker_registry_wsgi.contrib.django.DjangoUserPolicy``.
"""

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

SITE = EXAMPLES / "django_site"

MAKE_USERS = """
from django.contrib.auth.models import Group, Permission, User
publishers, _ = Group.objects.get_or_create(name="publishers")
publishers.permissions.set(Permission.objects.filter(
    content_type__app_label="hub", codename__in=["pull_image", "push_image"]))
readers, _ = Group.objects.get_or_create(name="readers")
User.objects.create_user("pat", password="pat-pw-1").groups.add(publishers)
User.objects.create_user("rita", password="rita-pw-2").groups.add(readers)
User.objects.create_user("mo", password="mo-pw-3")
User.objects.create_user("ina", password="ina-pw-4", is_active=False).groups.add(publishers)
"""


@pytest.fixture(scope="module")
def site_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """``DJANGO_SITE_DATA`` moves the site's database and registry folder to a temporary place."""
    require_module("django", "pip install django")
    return {"DJANGO_SITE_DATA": str(tmp_path_factory.mktemp("django_site")), "DJANGO_SECRET_KEY": "test secret"}


def manage(site_env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=SITE, env={**os.environ, **site_env},
                   check=True, capture_output=True, timeout=120)


@pytest.fixture(scope="module")
def accounts(site_env: dict[str, str]) -> Accounts:
    """``manage.py migrate`` (which creates the hub permissions), then users and groups."""
    manage(site_env, "migrate", "--noinput")
    manage(site_env, "shell", "-c", MAKE_USERS)
    return Accounts(publisher=("pat", "pat-pw-1"), reader=("rita", "rita-pw-2"), member=("mo", "mo-pw-3"))


@pytest.fixture(scope="module")
def site(site_env: dict[str, str], accounts: Accounts, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``gunicorn -k gthread django_site.wsgi``, run from the folder of ``manage.py``."""
    log = tmp_path_factory.mktemp("django_log") / "gunicorn.log"
    server = serve_site(gunicorn_command("django_site.wsgi"), log, env=site_env, cwd=SITE)
    yield server
    server.stop(show_log=False)


@pytest.fixture(scope="module")
def host_page() -> str:
    return "<h1>Django site</h1>"


class TestDjangoSite(SiteContract):
    def test_inactive_user_is_refused(self, site: ServerProcess) -> None:
        import requests

        # authenticate() refuses inactive users, although ina's group may push.
        assert requests.get(site.url + "/v2/", auth=("ina", "ina-pw-4"), timeout=30).status_code == 401

    def test_django_login_and_session_still_work(self, site: ServerProcess, accounts: Accounts) -> None:
        import re

        import requests

        with requests.Session() as browser:
            form = browser.get(site.url + "/accounts/login/", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
            assert token, form.text
            response = browser.post(
                site.url + "/accounts/login/",
                data={"username": "rita", "password": "rita-pw-2", "csrfmiddlewaretoken": token.group(1)},
                headers={"Referer": site.url + "/accounts/login/"}, timeout=30,
            )
            assert response.status_code == 200 and "Signed in as rita" in response.text
            assert browser.get(site.url + "/v2/", timeout=30).status_code == 401  # a session is no credential
            assert "Signed in as rita" in browser.get(site.url + "/", timeout=30).text
