"""docker_registry_wsgi.contrib.django: Django users and permissions decide registry access.

Django runs in this process with an in-memory database, configured once for the module.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Iterator

import pytest
import webtest

from tests.support.tools import in_ci

if in_ci():
    import django  # CI installs the test extras: a missing Django is a failure there
else:
    django = pytest.importorskip("django", reason="Django is not installed (pip install django)")

from django.conf import settings  # noqa: E402

if not settings.configured:
    settings.configure(
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests only
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        USE_TZ=True,
    )
    django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402

from docker_registry_wsgi.auth.base import Access  # noqa: E402
from docker_registry_wsgi.contrib import ConfigurationError  # noqa: E402
from docker_registry_wsgi.contrib.django import (  # noqa: E402
    DjangoUserPolicy,
    check_password,
    registry_delete,
    registry_from_settings,
    registry_mount,
    registry_pull,
    registry_push,
    with_registry,
)
from docker_registry_wsgi.events import Event  # noqa: E402

PERMISSIONS = {"pull": "auth.view_user", "push": "auth.add_user", "delete": "auth.delete_user"}


@pytest.fixture(scope="module", autouse=True)
def database() -> Iterator[None]:
    call_command("migrate", verbosity=0)
    pushers = Group.objects.create(name="pushers")
    pushers.permissions.set(Permission.objects.filter(codename__in=["view_user", "add_user"]))
    Group.objects.create(name="readers")
    User.objects.create_user("pat", password="pw").groups.add(pushers)
    User.objects.create_user("rita", password="pw").groups.add(Group.objects.get(name="readers"))
    User.objects.create_user("mo", password="pw")
    User.objects.create_user("ina", password="pw", is_active=False).groups.add(pushers)
    User.objects.create_superuser("root", password="pw")
    dee = User.objects.create_user("dee", password="pw")
    dee.user_permissions.add(Permission.objects.get(codename="delete_user"))
    yield


def user(name: str) -> Any:
    return User.objects.get(username=name)


def repo(*actions: str) -> Access:
    return Access.repository("team/app", *actions)


@pytest.fixture
def policy() -> DjangoUserPolicy:
    return DjangoUserPolicy(PERMISSIONS, {"pull": ["readers"]})


@pytest.mark.parametrize(
    ("name", "granted"),
    [
        ("pat", {"pull", "push"}),      # permissions through a group
        ("rita", {"pull"}),             # a group named in GROUPS
        ("dee", {"delete"}),            # a permission given to the user directly
        ("mo", set()),
        ("ina", set()),                 # inactive
        ("root", {"pull", "push", "delete"}),
    ],
)
def test_policy_grants_by_permission_and_group(policy: DjangoUserPolicy, name: str, granted: set[str]) -> None:
    assert policy.granted(user(name), repo("pull", "push", "delete")) == granted


def test_catalog_is_for_superusers(policy: DjangoUserPolicy) -> None:
    assert policy.granted(user("root"), Access.catalog()) == {"*"}
    assert policy.granted(user("pat"), Access.catalog()) == set()


def test_anonymous_callers(policy: DjangoUserPolicy) -> None:
    assert policy.granted(None, repo("pull")) == set()
    open_policy = DjangoUserPolicy(PERMISSIONS, anonymous_pull=True)
    assert open_policy.granted(None, repo("pull", "push")) == {"pull"}


def test_without_permissions_or_groups_only_superusers_get_access() -> None:
    policy = DjangoUserPolicy()
    assert policy.granted(user("pat"), repo("pull")) == set()
    assert policy.granted(user("root"), repo("pull")) == {"pull"}


def test_unknown_actions_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="pul"):
        DjangoUserPolicy({"pul": "auth.view_user"})


def test_check_password_uses_django_authenticate() -> None:
    assert check_password("pat", "pw").username == "pat"
    assert check_password("pat", "wrong") is None
    assert check_password("ina", "pw") is None  # inactive users are refused by ModelBackend
    assert check_password("nobody", "pw") is None


def test_wrapped_application_serves_the_registry_with_django_users(tmp_path: Path) -> None:
    def site(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"django site"]

    config = {"ROOT": tmp_path / "registry", "PERMISSIONS": PERMISSIONS, "GROUPS": {"pull": ["readers"]},
              "REALM": "test site", "CREDENTIAL_CACHE_SECONDS": 0}
    client = webtest.TestApp(with_registry(site, config))
    assert client.get("/").text == "django site"
    assert client.get("/v2/", status=401).headers["WWW-Authenticate"] == 'Basic realm="test site"'
    client.authorization = ("Basic", ("rita", "pw"))
    assert client.get("/v2/").status_int == 200
    assert client.post("/v2/team/app/blobs/uploads/", status=403).json["errors"][0]["code"] == "DENIED"
    client.authorization = ("Basic", ("pat", "pw"))
    assert client.post("/v2/team/app/blobs/uploads/", status=202)
    client.authorization = ("Basic", ("pat", "bad"))
    assert client.get("/v2/", status=401)


def test_settings_are_required() -> None:
    with pytest.raises(ConfigurationError, match="DOCKER_REGISTRY"):
        registry_from_settings()


def test_auth_and_policy_by_import_string(tmp_path: Path) -> None:
    from tests.contrib import hooks

    hooks.factory_calls.clear()
    config = {"ROOT": tmp_path, "AUTH": "tests.contrib.hooks.make_read_only"}
    client = webtest.TestApp(registry_from_settings(config))
    assert client.post("/v2/a/blobs/uploads/", status=403)
    assert hooks.factory_calls == [config]


def test_policy_by_import_string(tmp_path: Path) -> None:
    config = {"ROOT": tmp_path, "POLICY": "docker_registry_wsgi.auth.basic.AllowAuthenticated",
              "CREDENTIAL_CACHE_SECONDS": 0}
    client = webtest.TestApp(registry_from_settings(config))
    client.authorization = ("Basic", ("mo", "pw"))  # no permission at all, but authenticated
    assert client.post("/v2/a/blobs/uploads/", status=202)


# -- signals (django.dispatch) ------------------------------------------------------------------


def _push_blob(client: webtest.TestApp, name: str, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    client.post(f"/v2/{name}/blobs/uploads/?digest={digest}", data, content_type="application/octet-stream",
                status=201)
    return digest


@pytest.fixture
def signal_registry(tmp_path: Path) -> Any:
    return registry_from_settings({"ROOT": tmp_path / "registry", "PERMISSIONS": PERMISSIONS,
                                   "CREDENTIAL_CACHE_SECONDS": 0})


def test_signals_carry_the_event_and_the_registry_as_sender(signal_registry: Any) -> None:
    received: list[tuple[str, Any, Event, str]] = []

    def receiver(name: str) -> Any:
        def receive(sender: Any, event: Event, **kwargs: Any) -> None:
            # The database is usable in a receiver, as in a view.
            received.append((name, sender, event, User.objects.get(username=event.user).username))
        return receive

    receivers = {signal: receiver(name) for signal, name in (
        (registry_push, "push"), (registry_pull, "pull"), (registry_delete, "delete"), (registry_mount, "mount"))}
    for signal, function in receivers.items():
        signal.connect(function, sender=signal_registry, weak=False)
    try:
        client = webtest.TestApp(signal_registry)
        client.authorization = ("Basic", ("root", "pw"))
        digest = _push_blob(client, "team/app", b"layer")
        client.get(f"/v2/team/app/blobs/{digest}")
        client.post(f"/v2/team/copy/blobs/uploads/?mount={digest}&from=team/app", status=201)
        client.delete(f"/v2/team/app/blobs/{digest}", status=202)
    finally:
        for signal, function in receivers.items():
            signal.disconnect(function, sender=signal_registry)
    assert [(name, sender, e.action, e.repository, e.digest, user) for name, sender, e, user in received] == [
        ("push", signal_registry, "push", "team/app", digest, "root"),
        ("pull", signal_registry, "pull", "team/app", digest, "root"),
        ("mount", signal_registry, "mount", "team/copy", digest, "root"),
        ("delete", signal_registry, "delete", "team/app", digest, "root"),
    ]


def test_a_failing_receiver_is_logged_and_the_push_succeeds(signal_registry: Any,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    def broken(sender: Any, event: Event, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    registry_push.connect(broken, sender=signal_registry, weak=False)
    try:
        client = webtest.TestApp(signal_registry)
        client.authorization = ("Basic", ("root", "pw"))
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            _push_blob(client, "team/app", b"layer")  # 201
    finally:
        registry_push.disconnect(broken, sender=signal_registry)
    assert any("receiver bug" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


def test_without_receivers_for_this_registry_no_events_are_built(signal_registry: Any, tmp_path: Path) -> None:
    other = registry_from_settings({"ROOT": tmp_path / "other"})
    assert signal_registry.events.active is False
    registry_pull.connect(_ignore, sender=other, weak=False)
    try:
        assert signal_registry.events.active is False and other.events.active is True
    finally:
        registry_pull.disconnect(_ignore, sender=other)


def _ignore(sender: Any, **kwargs: Any) -> None:
    pass
