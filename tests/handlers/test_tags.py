"""``/v2/<name>/tags/list``: oci-distribution-spec.md "Listing Tags" (end-8a, end-8b); an ``n``
that is not a count is 400 PAGINATION_NUMBER_INVALID (docker-registry-http-api-v2.md "Listing Image
Tags", "On Failure: Invalid pagination number")."""

from __future__ import annotations

import json

import pytest
import webtest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.storage import MemoryStorage
from tests.unit_fixtures import FAST

from . import RegistryClient, assert_api_version, assert_error, next_link, path_of

TAGS = ["v1", "A", "latest", "B2", "_x", "1.0", "a-b", "a.b", "a_b", "zz"]


@pytest.fixture
def tagged(client: RegistryClient) -> list[str]:
    image = client.push_image("lib/app", None)
    for tag in TAGS:
        client.put_manifest("lib/app", tag, image.body, image.media_type)
    return sorted(TAGS)


def test_end_8a_list_in_lexical_order(app: webtest.TestApp, tagged: list[str]) -> None:
    """oci-distribution-spec.md: Listing Tags: 200, ``{"name", "tags"}`` in ASCIIbetical order."""
    response = app.get("/v2/lib/app/tags/list", status=200)
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {"name": "lib/app", "tags": tagged}
    assert "Link" not in response.headers
    assert_api_version(response.headers)


def test_end_8a_other_methods_405_with_allow(app: webtest.TestApp, tagged: list[str]) -> None:
    """end-8a is GET only; anything else is 405 with ``Allow``."""
    for method in ("DELETE", "PUT", "POST"):
        response = app.request("/v2/lib/app/tags/list", method=method, status=405)
        assert_error(response, 405, "UNSUPPORTED")
        assert response.headers["Allow"] == "GET"


def test_end_8a_repository_without_tags_is_empty(app: webtest.TestApp, client: RegistryClient) -> None:
    client.push_blob("lib/untagged", b"just a blob")
    assert json.loads(app.get("/v2/lib/untagged/tags/list").body) == {"name": "lib/untagged", "tags": []}


def test_end_8a_unknown_repository_404(app: webtest.TestApp) -> None:
    assert_error(app.get("/v2/no/such/tags/list", status=404), 404, "NAME_UNKNOWN")


def test_end_8a_invalid_name_400(app: webtest.TestApp) -> None:
    assert_error(app.get("/v2/UPPER/tags/list", status=400), 400, "NAME_INVALID")


@pytest.mark.parametrize("n", [1, 2, 3, 4, 9, 10])
def test_end_8b_pagination_follows_link_to_the_end(app: webtest.TestApp, tagged: list[str], n: int) -> None:
    """oci-distribution-spec.md: Listing Tags: ``n`` results per page, ``Link: <...>; rel="next"``
    (RFC 5988) while more are available, none on the last page."""
    seen: list[str] = []
    url: str | None = f"/v2/lib/app/tags/list?n={n}"
    pages = 0
    while url is not None:
        response = app.get(path_of(url), status=200)
        page = json.loads(response.body)["tags"]
        pages += 1
        url = next_link(response)
        if url is not None:
            assert len(page) == n
            assert url.startswith("http://localhost/v2/lib/app/tags/list?")
        seen.extend(page)
        assert pages <= len(tagged) + 1
    assert seen == tagged


def test_end_8b_n_zero_is_empty_without_link(app: webtest.TestApp, tagged: list[str]) -> None:
    """oci-distribution-spec.md: Listing Tags: when ``n`` is zero, an empty list and no ``Link``."""
    response = app.get("/v2/lib/app/tags/list?n=0", status=200)
    assert json.loads(response.body)["tags"] == []
    assert "Link" not in response.headers
    response = app.get("/v2/lib/app/tags/list?n=0&last=B2", status=200)
    assert json.loads(response.body)["tags"] == []
    assert "Link" not in response.headers


def test_end_8b_last_excludes_itself(app: webtest.TestApp, tagged: list[str]) -> None:
    """``last`` returns up to ``n`` tags after it, not including it; ``n`` is optional."""
    last = tagged[3]
    response = app.get(f"/v2/lib/app/tags/list?n=2&last={last}")
    assert json.loads(response.body)["tags"] == tagged[4:6]
    assert json.loads(app.get(f"/v2/lib/app/tags/list?last={last}").body)["tags"] == tagged[4:]
    assert json.loads(app.get("/v2/lib/app/tags/list?last=zzz").body)["tags"] == []
    # A last that is not a tag still orders lexically.
    assert json.loads(app.get("/v2/lib/app/tags/list?last=b").body)["tags"] == [t for t in tagged if t > "b"]


def test_end_8b_n_larger_than_count_has_no_link(app: webtest.TestApp, tagged: list[str]) -> None:
    response = app.get("/v2/lib/app/tags/list?n=1000")
    assert json.loads(response.body)["tags"] == tagged
    assert "Link" not in response.headers


@pytest.mark.parametrize("n", ["-1", "abc", "1e3", "9" * 30, "0x10", "+1", "1.0", "²", "①", "１", "٣"])
def test_end_8b_invalid_n_400(app: webtest.TestApp, tagged: list[str], n: str) -> None:
    """``n`` is an integer (spec "Listing Tags"); anything else, ``str.isdigit`` digits that are
    not ASCII included (``²`` was a 500), is 400 PAGINATION_NUMBER_INVALID."""
    error = assert_error(app.get("/v2/lib/app/tags/list", {"n": n}, status=400), 400,
                         "PAGINATION_NUMBER_INVALID")
    assert error["detail"] == {"n": n[:20]}


@FAST
@given(n=st.text(max_size=12) | st.text(st.characters(categories=["Nd", "No", "Nl"]), min_size=1, max_size=4),
       last=st.none() | st.text(max_size=12))
@example(n="²", last=None)
@example(n="①", last="v1")
@example(n="0000000000001", last=None)
def test_end_8b_never_500_for_any_n_or_last(n: str, last: str | None) -> None:
    """Any unicode ``n``/``last``: the tag list, or 400 PAGINATION_NUMBER_INVALID exactly when
    ``n`` is not ASCII digits (at most 9 significant); never a 500."""
    app = webtest.TestApp(Registry(storage=MemoryStorage()))
    client = RegistryClient(app)
    image = client.push_image("lib/app", "v1")
    params = {"n": n} if last is None else {"n": n, "last": last}
    response = app.get("/v2/lib/app/tags/list", params, expect_errors=True)
    if n == "" or (all(c in "0123456789" for c in n) and len(n.lstrip("0")) <= 9):
        assert response.status_int == 200, response.body
        expected = ["v1"] if (last is None or last < "v1") and (n == "" or int(n) > 0) else []
        assert json.loads(response.body) == {"name": image.name, "tags": expected}
    else:
        assert_error(response, 400, "PAGINATION_NUMBER_INVALID")
