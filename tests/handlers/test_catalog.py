"""``/v2/_catalog``: the repository listing (docker-registry-http-api-v2.md "Listing Repositories"),
paginated like oci-distribution-spec.md "Listing Tags"; an ``n`` that is not a count is 400
PAGINATION_NUMBER_INVALID (docker-registry-http-api-v2.md "Catalog", "On Failure: Invalid
pagination number")."""

from __future__ import annotations

import json

import pytest
import webtest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import MemoryStorage
from tests.unit_fixtures import FAST

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


@pytest.mark.parametrize("n", ["-5", "abc", "1e3", "0x10", "+3", " 3", "3 ", "1_0", "9" * 10, "²", "①", "３", "٣"])
def test_catalog_invalid_n_400(app: webtest.TestApp, n: str) -> None:
    """"On Failure: Invalid pagination number": ``n`` not an integer, negative or too large: 400.
    ``²`` and ``①`` passed ``str.isdigit`` and failed ``int`` (a 500); ``３`` and ``٣`` are
    digits to ``int`` but not ASCII: all refused alike."""
    error = assert_error(app.get("/v2/_catalog", {"n": n}, status=400), 400, "PAGINATION_NUMBER_INVALID")
    assert error["detail"] == {"n": n}


def test_catalog_n_with_leading_zeros(app: webtest.TestApp, repositories: list[str]) -> None:
    """Leading zeros do not count against the size limit (``strconv.Atoi`` reads them too)."""
    response = app.get("/v2/_catalog", {"n": "0" * 20 + "2"}, status=200)
    assert json.loads(response.body)["repositories"] == repositories[:2]


def _is_count(n: str) -> bool:
    return n == "" or (all(c in "0123456789" for c in n) and len(n.lstrip("0")) <= 9)


@FAST
@given(n=st.text(max_size=12) | st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4),
       last=st.none() | st.text(max_size=12))
@example(n="²", last=None)
@example(n="①", last=None)
@example(n="999999999", last="")
def test_catalog_never_500_for_any_n_or_last(n: str, last: str | None) -> None:
    """Any unicode ``n``/``last``: a page, or 400 PAGINATION_NUMBER_INVALID exactly when ``n`` is
    not ASCII digits; never a 500."""
    app = webtest.TestApp(Registry(storage=MemoryStorage()))
    params = {"n": n} if last is None else {"n": n, "last": last}
    response = app.get("/v2/_catalog", params, expect_errors=True)
    if _is_count(n):
        assert response.status_int == 200, response.body
        assert json.loads(response.body) == {"repositories": []}
    else:
        assert_error(response, 400, "PAGINATION_NUMBER_INVALID")


def test_catalog_other_methods_405(app: webtest.TestApp) -> None:
    assert_error(app.delete("/v2/_catalog", status=405), 405, "UNSUPPORTED")
    assert_error(app.post("/v2/_catalog", status=405), 405, "UNSUPPORTED")
