"""The route table: every endpoint of the spec matches its path and builds it back.

Spec: oci-distribution-spec.md "Endpoints" (end-1 .. end-14) and "Pulling manifests" (``<name>``
has one or more ``/``-separated components, so a name may itself contain ``manifests``, ``blobs``,
``uploads``, ``tags`` ...); docker-registry-http-api-v2.md "Detail" (the route list) and
"Listing Repositories" (``/v2/_catalog``).
"""

from __future__ import annotations

import secrets

import pytest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi.access import DELETE, PULL, PUSH, Access
from docker_registry_wsgi.errors import NameInvalid
from docker_registry_wsgi.references import parse_name
from docker_registry_wsgi.routes import ROUTES, RouteTable
from tests.unit_fixtures import FAST, digest_strings, repository_names, tags

TABLE = RouteTable()
D = "sha256:" + "a" * 64
UID = "Jzn3tr6Wr4O8rYlZumHHoYtuyBqZHWD3"

#: oci-distribution-spec.md "Endpoints": (id, method, path below /v2) -> (endpoint, handler, actions).
SPEC_ENDPOINTS = [
    ("end-1", "GET", "/", "base", "base.check", ()),
    ("end-1", "HEAD", "/", "base", "base.check", ()),
    ("end-2", "GET", f"/a/b/blobs/{D}", "blob", "blobs.get_blob", (PULL,)),
    ("end-2", "HEAD", f"/a/b/blobs/{D}", "blob", "blobs.get_blob", (PULL,)),
    ("end-3", "GET", "/a/b/manifests/latest", "manifest", "manifests.get_manifest", (PULL,)),
    ("end-3", "HEAD", f"/a/b/manifests/{D}", "manifest", "manifests.get_manifest", (PULL,)),
    ("end-4a", "POST", "/a/b/blobs/uploads/", "uploads", "uploads.start_upload", (PULL, PUSH)),
    ("end-4a", "POST", "/a/b/blobs/uploads", "uploads", "uploads.start_upload", (PULL, PUSH)),
    ("end-5", "PATCH", f"/a/b/blobs/uploads/{UID}", "upload", "uploads.patch_upload", (PUSH,)),
    ("end-6", "PUT", f"/a/b/blobs/uploads/{UID}", "upload", "uploads.finish_upload", (PUSH,)),
    ("end-7", "PUT", "/a/b/manifests/v1.0", "manifest", "manifests.put_manifest", (PULL, PUSH)),
    ("end-8", "GET", "/a/b/tags/list", "tags", "tags.list_tags", (PULL,)),
    ("end-9", "DELETE", f"/a/b/manifests/{D}", "manifest", "manifests.delete_manifest", (DELETE,)),
    ("end-10", "DELETE", f"/a/b/blobs/{D}", "blob", "blobs.delete_blob", (DELETE,)),
    ("end-12", "GET", f"/a/b/referrers/{D}", "referrers", "referrers.list_referrers", (PULL,)),
    ("end-12", "HEAD", f"/a/b/referrers/{D}", "referrers", "referrers.list_referrers", (PULL,)),
    ("end-13", "GET", f"/a/b/blobs/uploads/{UID}", "upload", "uploads.upload_status", (PUSH,)),
    ("end-14", "DELETE", f"/a/b/blobs/uploads/{UID}", "upload", "uploads.cancel_upload", (PUSH,)),
    ("catalog", "GET", "/_catalog", "catalog", "catalog.list_repositories", ()),
]


@pytest.mark.parametrize("spec_id,method,path,endpoint,handler,actions", SPEC_ENDPOINTS,
                         ids=[f"{e[0]}-{e[1]}" for e in SPEC_ENDPOINTS])
def test_spec_endpoints(spec_id: str, method: str, path: str, endpoint: str, handler: str,
                        actions: tuple[str, ...]) -> None:
    """spec "Endpoints": each endpoint's path routes to its handler with the access it needs."""
    matched = TABLE.match(path)
    assert matched is not None, path
    route, params = matched
    assert route.endpoint == endpoint
    function = route.methods[method].handler
    assert f"{function.__module__.rpartition('.')[2]}.{function.__name__}" == handler
    assert route.methods[method].actions == actions
    if "name" in params:
        assert params["name"] == "a/b"


def test_every_route_is_in_the_spec_table() -> None:
    """Every (endpoint, method) of the route table is covered above; none is left untested."""
    covered = {(e[3], e[1]) for e in SPEC_ENDPOINTS}
    declared = {(route.endpoint, method) for route in ROUTES for method in route.methods}
    assert declared == covered


@pytest.mark.parametrize("spec_id,method,path,endpoint,handler,actions", SPEC_ENDPOINTS,
                         ids=[f"{e[0]}-{e[1]}" for e in SPEC_ENDPOINTS])
def test_every_route_declares_its_access(spec_id: str, method: str, path: str, endpoint: str,
                                         handler: str, actions: tuple[str, ...]) -> None:
    """The table says what each request needs: the repository's actions, the catalog, or nothing for ``/v2/``."""
    matched = TABLE.match(path)
    assert matched is not None
    route, params = matched
    needed = route.methods[method].access(params, {})
    if endpoint == "base":
        assert needed == []
    elif endpoint == "catalog":
        assert needed == [Access("registry", "catalog", frozenset({"*"}))]
    else:
        assert needed == [Access("repository", "a/b", frozenset(actions))]


def test_a_mount_needs_pull_on_its_source() -> None:
    """spec "Mounting a blob from another repository": the client must be allowed to pull ``from``."""
    route, params = TABLE.match("/a/b/blobs/uploads/")  # type: ignore[misc]
    post = route.methods["POST"]
    assert post.access(params, {"mount": D, "from": "c/d"}) == [
        Access.repository("a/b", PULL, PUSH), Access.repository("c/d", PULL)]
    assert post.access(params, {"mount": D}) == [Access.repository("a/b", PULL, PUSH)]
    assert post.access(params, {"from": "c/d"}) == [Access.repository("a/b", PULL, PUSH)], "no mount, no source"
    with pytest.raises(NameInvalid):
        post.access(params, {"mount": D, "from": "UPPER/case"})


def params_for(endpoint: str) -> st.SearchStrategy[dict[str, str]]:
    name = repository_names()
    upload_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-",
                         min_size=16, max_size=64)
    return {
        "base": st.just({}),
        "catalog": st.just({}),
        "tags": st.fixed_dictionaries({"name": name}),
        "manifest": st.fixed_dictionaries({"name": name, "reference": st.one_of(tags, digest_strings())}),
        "uploads": st.fixed_dictionaries({"name": name}),
        "upload": st.fixed_dictionaries({"name": name, "upload_id": upload_ids}),
        "blob": st.fixed_dictionaries({"name": name, "digest": digest_strings()}),
        "referrers": st.fixed_dictionaries({"name": name, "digest": digest_strings()}),
    }[endpoint]


endpoint_and_params = st.sampled_from([r.endpoint for r in ROUTES]).flatmap(
    lambda e: st.tuples(st.just(e), params_for(e))
)


@FAST
@given(case=endpoint_and_params)
@example(case=("manifest", {"name": "a/manifests/b", "reference": "latest"}))
@example(case=("manifest", {"name": "a/manifests/b/manifests/c", "reference": D}))
@example(case=("tags", {"name": "a/manifests/b"}))
@example(case=("tags", {"name": "a/tags/list"}))
@example(case=("tags", {"name": "x/manifests"}))
@example(case=("uploads", {"name": "x/blobs"}))
@example(case=("uploads", {"name": "x/blobs/uploads"}))
@example(case=("upload", {"name": "x/blobs/uploads", "upload_id": UID}))
@example(case=("blob", {"name": "a/blobs/uploads", "digest": D}))
@example(case=("blob", {"name": "x/referrers", "digest": D}))
@example(case=("referrers", {"name": "x/blobs", "digest": D}))
@example(case=("manifest", {"name": "v2", "reference": "list"}))
@example(case=("manifest", {"name": "tags", "reference": "list"}))
def test_every_endpoint_builds_and_matches_back(case: tuple[str, dict[str, str]]) -> None:
    """spec "Pulling manifests": names of many components, API words included, route unambiguously.

    The URL the registry hands out (``Location``) must route back to the same endpoint with the
    same parameters, whatever the name (e.g. ``a/manifests/b``).
    """
    endpoint, values = case
    path = TABLE.path(endpoint, **values)
    assert path.startswith("/")
    matched = TABLE.match(path)
    assert matched is not None, path
    route, params = matched
    assert (route.endpoint, params) == (endpoint, values)


def test_many_components() -> None:
    """spec "Pulling manifests": the name grammar repeats ``/component`` without limit (only the length)."""
    name = "/".join(f"c{i}" for i in range(60))
    assert len(name) <= 255
    parse_name(name)
    assert TABLE.match(f"/{name}/manifests/latest")[1] == {"name": name, "reference": "latest"}  # type: ignore[index]
    assert TABLE.path("tags", name=name) == f"/{name}/tags/list"


@pytest.mark.parametrize(
    "path,endpoint,params",
    [
        ("/a/manifests/b/manifests/latest", "manifest", {"name": "a/manifests/b", "reference": "latest"}),
        ("/a/manifests/b/tags/list", "tags", {"name": "a/manifests/b"}),
        ("/a/blobs/uploads", "uploads", {"name": "a"}),
        ("/x/blobs/blobs/uploads/", "uploads", {"name": "x/blobs"}),
        (f"/a/blobs/uploads/blobs/{D}", "blob", {"name": "a/blobs/uploads", "digest": D}),
        (f"/a/blobs/uploads/{D}", "upload", {"name": "a", "upload_id": D}),
        (f"/x/referrers/blobs/{D}", "blob", {"name": "x/referrers", "digest": D}),
        (f"/x/blobs/referrers/{D}", "referrers", {"name": "x/blobs", "digest": D}),
        ("/_catalog/tags/list", "tags", {"name": "_catalog"}),
    ],
)
def test_ambiguous_looking_paths(path: str, endpoint: str, params: dict[str, str]) -> None:
    """spec "Endpoints": the endpoint is decided by the path's tail; the rest is the name."""
    matched = TABLE.match(path)
    assert matched is not None
    assert (matched[0].endpoint, matched[1]) == (endpoint, params)


@pytest.mark.parametrize(
    "path",
    ["/a", "/a/", "/a/manifests/", "/a/manifests", "/a/blobs/", "/a/tags", "/a/tags/list/", "/a/tags/list/x",
     "/a/blobs/uploads/x/", "/a/referrers/", "//a/tags/list", "/manifests/x", "/blobs/uploads/",
     "/_catalog/", "/_catalog/x", "/a/manifests/b/c", "a/tags/list"],
)
def test_paths_without_an_endpoint(path: str) -> None:
    """spec "Endpoints": anything else below /v2 is no endpoint (the app answers 404 as OCI JSON)."""
    assert TABLE.match(path) is None


def test_names_are_matched_loosely_and_validated_later() -> None:
    """spec "Pulling manifests": a bad name reaches parse_name, so the client gets NAME_INVALID, not 404."""
    for bad in ("a//b", "A/b", "a/../b", "a/./b", "a%2Fb", "-a"):
        matched = TABLE.match(f"/{bad}/tags/list")
        assert matched is not None and matched[1]["name"] == bad
        with pytest.raises(NameInvalid):
            parse_name(matched[1]["name"])


def test_built_paths_are_quoted() -> None:
    """A parameter never adds a path segment or a query to a URL the registry hands out."""
    assert TABLE.path("manifest", name="a/b", reference="x?y#z") == "/a/b/manifests/x%3Fy%23z"
    assert TABLE.path("blob", name="a", digest=D) == f"/a/blobs/{D}"
    assert TABLE.path("uploads", name="a/b") == "/a/b/blobs/uploads/"
    assert TABLE.path("base") == "/"
    assert TABLE.path("catalog") == "/_catalog"


@FAST
@given(path=st.text(alphabet="/abmnifestlougpdrc_:0123456789%.", max_size=60))
def test_any_path_matches_or_not_without_error(path: str) -> None:
    """Hostile paths: matching never raises; a match's parameters reassemble into the path."""
    matched = TABLE.match(path)
    if matched is None:
        return
    route, params = matched
    assert TABLE.path(route.endpoint, **params) in (path, path + "/", path.rstrip("/") + "/")


def test_a_fresh_table_per_registry() -> None:
    """No module-level state: each RouteTable is independent and built from the routes it is given."""
    small = RouteTable(ROUTES[:2])
    assert small.match("/a/tags/list") is None
    assert small.match("/_catalog")[0].endpoint == "catalog"  # type: ignore[index]
    assert TABLE.match("/a/tags/list") is not None
    assert secrets.compare_digest(TABLE.path("tags", name="a"), "/a/tags/list")
