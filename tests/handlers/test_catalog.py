"""``/v2/_catalog``: the repository listing (docker-registry-http-api-v2.md "Listing Repositories"),
paginated like oci-distribution-spec.md "Listing Tags"."""

from __future__ import annotations

import json

import pytest
import webtest

from . import RegistryClient, assert_api_version, assert_error, next_link, path_of

REPOSITORIES = ["lib/app", "lib/app/sub", "a", "a-b/c", "zeta", "lib/zz", "b.c", "lib_x/y"]


@pytest.fixture
def repositories(client: RegistryClient) -> list[str]:
    for name in REPOSITORIES:
        client.push_blob(name, b"content of " + name.encode())
    return sorted(REPOSITORIES)


def test_catalog_empty_registry(app: webtest.TestApp) -> None:
    response = app.get("/v2/_catalog", status=200)
    assert json.loads(response.body) == {"repositories": []}
    assert_api_version(response.headers)


def test_catalog_lists_every_repository_in_order(app: webtest.TestApp, repositories: list[str]) -> None:
    """docker-registry-http-api-v2.md: Listing Repositories: ``{"repositories": [...]}`` in lexical order."""
    response = app.get("/v2/_catalog", status=200)
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"repositories": repositories}
    assert "Link" not in response.headers


def test_catalog_includes_repositories_with_only_manifests(app: webtest.TestApp,
                                                           client: RegistryClient) -> None:
    client.push_image("images/one", "v1")
    assert json.loads(app.get("/v2/_catalog").body)["repositories"] == ["images/one"]


@pytest.mark.parametrize("n", [1, 3, 7, 8])
def test_catalog_pagination_with_link(app: webtest.TestApp, repositories: list[str], n: int) -> None:
    """docker-registry-http-api-v2.md: Pagination: ``n``/``last`` and ``Link: <...>; rel="next"``."""
    seen: list[str] = []
    url: str | None = f"/v2/_catalog?n={n}"
    while url is not None:
        response = app.get(path_of(url), status=200)
        page = json.loads(response.body)["repositories"]
        url = next_link(response)
        if url is not None:
            assert len(page) == n
            assert url.startswith("http://localhost/v2/_catalog?")
        seen.extend(page)
        assert len(seen) <= len(repositories)
    assert seen == repositories


def test_catalog_n_zero_empty_without_link(app: webtest.TestApp, repositories: list[str]) -> None:
    response = app.get("/v2/_catalog?n=0", status=200)
    assert json.loads(response.body)["repositories"] == []
    assert "Link" not in response.headers


def test_catalog_last(app: webtest.TestApp, repositories: list[str]) -> None:
    response = app.get(f"/v2/_catalog?n=2&last={repositories[1]}")
    assert json.loads(response.body)["repositories"] == repositories[2:4]
    assert json.loads(app.get(f"/v2/_catalog?last={repositories[-1]}").body)["repositories"] == []


def test_catalog_invalid_n_400(app: webtest.TestApp) -> None:
    assert_error(app.get("/v2/_catalog?n=-5", status=400), 400)


def test_catalog_other_methods_405(app: webtest.TestApp) -> None:
    assert_error(app.delete("/v2/_catalog", status=405), 405, "UNSUPPORTED")
    assert_error(app.post("/v2/_catalog", status=405), 405, "UNSUPPORTED")
