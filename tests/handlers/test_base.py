"""``/v2/``: oci-distribution-spec.md "Determining Support" (end-1)."""

from __future__ import annotations

import json
from typing import Sequence

import webtest
from werkzeug.wrappers import Request

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.errors import Unauthorized
from docker_registry_wsgi.storage import Storage

from . import assert_api_version, assert_error


def test_end_1_get_base_is_200_with_empty_json(app: webtest.TestApp) -> None:
    """oci-distribution-spec.md: Determining Support: 200 means the API is implemented."""
    response = app.get("/v2/", status=200)
    assert response.content_type == "application/json"
    assert json.loads(response.body) == {}
    assert response.headers["Content-Length"] == str(len(response.body))
    assert_api_version(response.headers)


def test_end_1_head_base_is_200_without_body(app: webtest.TestApp) -> None:
    response = app.head("/v2/", status=200)
    assert response.body == b""
    assert_api_version(response.headers)


def test_end_1_base_without_trailing_slash(app: webtest.TestApp) -> None:
    """``/v2`` (no slash) is the same endpoint; some clients probe it that way."""
    response = app.get("/v2", status=200)
    assert json.loads(response.body) == {}


class _Challenging:
    """A hook that wants credentials everywhere (docker login probes /v2/ for the scheme)."""

    def __init__(self) -> None:
        self.needed: list[Sequence[Access]] = []

    def authorize(self, request: Request, needed: Sequence[Access]) -> object:
        self.needed.append(list(needed))
        if "Authorization" not in request.headers:
            raise Unauthorized(challenge='Basic realm="test-registry"')
        return "someone"


def test_end_1_base_401_carries_challenge_and_oci_error(storage: Storage) -> None:
    """end-1 fails with 401: ``WWW-Authenticate`` and the UNAUTHORIZED error body (code-11)."""
    hook = _Challenging()
    app = webtest.TestApp(Registry(storage=storage, auth=hook))
    response = app.get("/v2/", status=401)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"] == 'Basic realm="test-registry"'
    assert hook.needed == [[]]
    head = app.head("/v2/", status=401)
    assert_error(head, 401)
    assert head.headers["WWW-Authenticate"] == 'Basic realm="test-registry"'
    ok = app.get("/v2/", headers={"Authorization": "Basic eDp5"}, status=200)
    assert_api_version(ok.headers)
