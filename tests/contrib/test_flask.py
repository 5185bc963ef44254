"""docker_registry_wsgi.contrib.flask: the init_app extension, configured from app.config."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest
from flask import Flask, current_app, g

from docker_registry_wsgi.app import Registry
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.contrib import ConfigurationError
from docker_registry_wsgi.contrib.flask import EXTENSION_NAME, DockerRegistry
from tests.contrib import hooks


def make_app(tmp_path: Path, **config: object) -> Flask:
    app = Flask("site")
    app.config["DOCKER_REGISTRY_ROOT"] = str(tmp_path / "registry")
    app.config.update(config)

    @app.route("/")
    def home() -> str:
        return "home page"

    return app


def test_init_app_mounts_the_registry_from_app_config(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    extension = DockerRegistry()
    registry = extension.init_app(app)
    assert isinstance(registry, Registry)
    assert app.extensions[EXTENSION_NAME] is registry is DockerRegistry.registry(app)
    client = webtest.TestApp(app)
    assert client.get("/").text == "home page"
    response = client.get("/v2/")
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert (tmp_path / "registry").is_dir()


def test_constructor_with_app_initialises_it(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    DockerRegistry(app)
    assert EXTENSION_NAME in app.extensions


@pytest.mark.parametrize("name", ["tests.contrib.hooks:read_only", "tests.contrib.hooks:make_read_only"])
def test_auth_from_an_import_string_in_config(tmp_path: Path, name: str) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_AUTH=name)
    hooks.factory_calls.clear()
    DockerRegistry().init_app(app)
    if name.endswith("make_read_only"):
        assert hooks.factory_calls == [app.config]
    client = webtest.TestApp(app)
    assert client.get("/v2/").status_int == 200
    denied = client.post("/v2/a/blobs/uploads/", status=403)
    assert denied.json["errors"][0]["code"] == "DENIED"


def test_auth_argument_overrides_config_and_runs_in_an_app_context(tmp_path: Path) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_AUTH="tests.contrib.hooks:read_only", SITE_USERS={"alice": "pw"})
    seen: list[str] = []

    def verify(name: str, password: str) -> object:
        # A site's password check uses current_app and g, as its views do.
        g.checked = name
        seen.append(current_app.name)
        return name if current_app.config["SITE_USERS"].get(name) == password else None

    DockerRegistry(auth=BasicAuth(verify)).init_app(app)
    client = webtest.TestApp(app)
    assert client.get("/v2/", status=401).headers["WWW-Authenticate"].startswith("Basic ")
    client.authorization = ("Basic", ("alice", "pw"))
    assert client.get("/v2/").status_int == 200
    assert client.post("/v2/a/blobs/uploads/").status_int == 202  # not the config's ReadOnly
    assert seen and set(seen) == {"site"}
    client.authorization = ("Basic", ("alice", "bad"))
    assert client.get("/v2/", status=401)


def test_missing_root_names_the_config_key() -> None:
    with pytest.raises(ConfigurationError, match="DOCKER_REGISTRY_ROOT"):
        DockerRegistry().init_app(Flask("site"))


def test_max_manifest_size_from_config(tmp_path: Path) -> None:
    app = make_app(tmp_path, DOCKER_REGISTRY_MAX_MANIFEST_SIZE="1K")
    DockerRegistry().init_app(app)
    client = webtest.TestApp(app)
    big = b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","x":"' + b"a" * 2000 + b'"}'
    response = client.put("/v2/a/manifests/v1", params=big, status="*",
                          content_type="application/vnd.oci.image.manifest.v1+json")
    assert response.status_int == 413


def test_init_app_twice_is_refused(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    extension = DockerRegistry()
    extension.init_app(app)
    with pytest.raises(RuntimeError):
        extension.init_app(app)


def test_one_extension_serves_two_apps_with_their_own_registries(tmp_path: Path) -> None:
    extension = DockerRegistry()
    first, second = make_app(tmp_path / "a"), make_app(tmp_path / "b")
    assert extension.init_app(first) is not extension.init_app(second)
