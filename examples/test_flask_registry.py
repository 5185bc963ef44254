"""Tests of the Flask example site's registry auth hook, with docker_registry_wsgi's test client.

The site (``flask_site``) checks registry passwords against its own users and grants by role:
readers pull, publishers pull and push, members neither. docs/testing.rst shows this file;
``tests/testing/test_docs_example.py`` runs it. Run it yourself from ``examples/``::

    python -m pytest test_flask_registry.py
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from docker_registry_wsgi.testing import RegistryClient, UnexpectedStatus, assert_oci_error
from flask_site import create_app, users

REPOSITORY = "team/app"


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """The site with its users' database and registry in ``tmp_path``, and one user per role."""
    app = create_app({"SITE_DATABASE": str(tmp_path / "users.sqlite3"),
                      "DOCKER_REGISTRY_ROOT": str(tmp_path / "registry")})
    with app.app_context():
        users.add_user("pat", "pat-password", "publisher")
        users.add_user("rita", "rita-password", "reader")
        users.add_user("mo", "mo-password", "member")
    return app


def client(app: Flask, user: str | None = None) -> RegistryClient:
    """A registry client of ``user`` (anonymous without one), talking to the whole site."""
    return RegistryClient(app, auth=(user, f"{user}-password") if user else None)


def test_publisher_pushes_and_pulls_back(app: Flask) -> None:
    pat = client(app, "pat")
    amd64 = pat.push_image(REPOSITORY, None, layers=[b"amd64 layer"], platform=("linux", "amd64"))
    arm64 = pat.push_image(REPOSITORY, None, layers=[b"arm64 layer"], platform=("linux", "arm64"))
    index = pat.push_index(REPOSITORY, "v1", [amd64, arm64])

    pulled = pat.pull_image(REPOSITORY, "v1")
    assert pulled.digest == index.digest
    assert [child.blobs for child in pulled.children] == [amd64.blobs, arm64.blobs]
    assert pat.tags(REPOSITORY) == ["v1"]


def test_reader_pulls_but_may_not_push(app: Flask) -> None:
    image = client(app, "pat").push_image(REPOSITORY, "v1")
    rita = client(app, "rita")
    assert rita.pull_image(REPOSITORY, "v1").digest == image.digest

    with pytest.raises(UnexpectedStatus) as refused:
        rita.push_blob(REPOSITORY, b"not allowed")
    assert_oci_error(refused.value.response, "DENIED", 403)


def test_member_may_not_pull(app: Flask) -> None:
    image = client(app, "pat").push_image(REPOSITORY, "v1")
    mo = client(app, "mo")
    assert mo.ping().status == 200  # a valid login, without any registry right
    assert_oci_error(mo.get(f"{REPOSITORY}/manifests/v1"), "DENIED", 403)
    assert_oci_error(mo.get(f"{REPOSITORY}/blobs/{image.document['config']['digest']}"), "DENIED", 403)


def test_anonymous_and_wrong_passwords_are_challenged(app: Flask) -> None:
    for caller in (client(app), RegistryClient(app, auth=("pat", "wrong"))):
        response = caller.get(f"{REPOSITORY}/tags/list")
        assert_oci_error(response, "UNAUTHORIZED", 401)
        assert response.headers["WWW-Authenticate"].startswith('Basic realm="flask site"')


def test_a_partly_read_download_is_closed(app: Flask) -> None:
    pat = client(app, "pat")
    digest = pat.push_blob(REPOSITORY, bytes(3 * 1024 * 1024), mode="chunked")
    # Closing checks that the site forwarded close() to the registry's blob reader.
    with pat.open_blob(REPOSITORY, digest) as download:
        assert download.status == 200
        assert download.read(10) == bytes(10)
