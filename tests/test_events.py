"""docker_registry_wsgi.events: what each request emits, the request id, subscribers' failures.

The registry is driven through WSGI (WebTest) over memory and filesystem storage; a list
subscriber records the events. Actions and target fields follow distribution's notifications
(notifications/bridge.go: a manifest push/pull carries the tag it was asked by, deletes carry
the repository and the digest or the tag; notifications/listener.go: a tag delete is its own event).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import webtest
from hypothesis import given, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.events import (
    ACTIONS,
    REQUEST_ID_KEY,
    Event,
    EventHub,
    Happened,
    RequestRecord,
    parse_actions,
    request_id,
)
from docker_registry_wsgi.storage import Storage
from tests.handlers import OCI_MANIFEST, RegistryClient, path_of, sha256, with_query
from tests.unit_fixtures import FAST, digest_strings, repository_names, tags

BLOB = b"some layer bytes"
OCTET = "application/octet-stream"
#: The characters an incoming X-Request-ID may use (docs/events.rst), 1 to 200 of them.
SAFE_ID = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/+=@-")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


class Recorder(list[Event]):
    """A subscriber that keeps every event it gets."""

    def __call__(self, event: Event) -> None:
        self.append(event)


@pytest.fixture
def seen() -> Recorder:
    return Recorder()


@pytest.fixture
def registry(storage: Storage, seen: Recorder) -> Registry:
    registry = Registry(storage=storage)
    registry.events.subscribe(seen)
    return registry


@pytest.fixture
def app(registry: Registry) -> webtest.TestApp:
    return webtest.TestApp(registry, extra_environ={"HTTP_HOST": "registry.test:5000",
                                                    "HTTP_USER_AGENT": "test-client/1.0",
                                                    "REMOTE_ADDR": "192.0.2.7"})


@pytest.fixture
def client(app: webtest.TestApp) -> RegistryClient:
    return RegistryClient(app)


def only(seen: Recorder) -> Event:
    assert len(seen) == 1, seen
    event = seen[0]
    seen.clear()
    return event


# -- the request id --------------------------------------------------------------------------


def test_request_id_honours_a_valid_header_and_stores_it() -> None:
    environ: dict[str, Any] = {"HTTP_X_REQUEST_ID": "edge-7f3a:42"}
    assert request_id(environ) == "edge-7f3a:42"
    assert environ[REQUEST_ID_KEY] == "edge-7f3a:42"


def test_request_id_is_generated_once_per_request() -> None:
    environ: dict[str, Any] = {}
    first = request_id(environ)
    assert UUID.fullmatch(first)
    assert request_id(environ) == first  # a second caller (the logs) gets the same id


def test_request_id_already_in_the_environ_wins_over_the_header() -> None:
    environ: dict[str, Any] = {REQUEST_ID_KEY: "from-outer-middleware", "HTTP_X_REQUEST_ID": "x"}
    assert request_id(environ) == "from-outer-middleware"


@FAST
@given(st.one_of(st.text(max_size=220), st.text(alphabet=sorted(SAFE_ID), min_size=1, max_size=220)))
def test_request_id_takes_only_safe_headers(header: str) -> None:
    """A header with spaces, newlines, quotes or over 200 characters is replaced, never echoed."""
    result = request_id({"HTTP_X_REQUEST_ID": header})
    if 1 <= len(header) <= 200 and set(header) <= SAFE_ID:
        assert result == header
    else:
        assert UUID.fullmatch(result)


# -- what requests emit ----------------------------------------------------------------------


def test_monolithic_blob_push_emits_a_blob_push(client: RegistryClient, seen: Recorder) -> None:
    digest = client.app.post(f"/v2/team/app/blobs/uploads/?digest={sha256(BLOB)}", BLOB,
                             content_type=OCTET, headers={"X-Request-ID": "req-1"},
                             status=201).headers["Docker-Content-Digest"]
    event = only(seen)
    assert (event.action, event.kind, event.repository) == ("push", "blob", "team/app")
    assert (event.digest, event.size, event.media_type, event.tag) == (digest, len(BLOB), OCTET, None)
    assert event.url == f"http://registry.test:5000/v2/team/app/blobs/{digest}"
    assert event.request == RequestRecord("req-1", "192.0.2.7", "registry.test:5000", "POST",
                                          "test-client/1.0")
    assert event.user is None
    assert UUID.fullmatch(event.id) and event.timestamp.tzinfo is not None


def test_chunked_upload_emits_one_push_when_it_finishes(app: webtest.TestApp, seen: Recorder) -> None:
    location = path_of(app.post("/v2/team/app/blobs/uploads/", status=202).headers["Location"])
    location = path_of(app.patch(location, BLOB[:5], content_type=OCTET, status=202).headers["Location"])
    assert seen == []  # opening and appending are not pushes
    app.put(with_query(location, digest=sha256(BLOB)), BLOB[5:], content_type=OCTET, status=201)
    event = only(seen)
    assert (event.action, event.kind, event.digest, event.size) == ("push", "blob", sha256(BLOB), len(BLOB))
    assert event.request.method == "PUT"


def test_mount_emits_a_mount_with_its_source(client: RegistryClient, seen: Recorder) -> None:
    digest = client.push_blob("team/base", BLOB)
    seen.clear()
    client.app.post(f"/v2/team/app/blobs/uploads/?mount={digest}&from=team/base", status=201)
    event = only(seen)
    assert (event.action, event.kind, event.repository) == ("mount", "blob", "team/app")
    assert (event.digest, event.size, event.from_repository) == (digest, len(BLOB), "team/base")
    assert event.url == f"http://registry.test:5000/v2/team/app/blobs/{digest}"


def test_a_mount_that_falls_back_to_an_upload_is_no_mount(client: RegistryClient, seen: Recorder) -> None:
    client.app.post(f"/v2/team/app/blobs/uploads/?mount={sha256(b'absent')}&from=team/base", status=202)
    assert seen == []


def test_manifest_push_by_tag_carries_the_tag(client: RegistryClient, seen: Recorder) -> None:
    image = client.push_image("team/app", "v1")
    pushes = [e for e in seen if e.kind == "manifest"]
    assert [e.kind for e in seen] == ["blob", "blob", "manifest"]  # config, layer, manifest
    event = pushes[0]
    assert (event.action, event.digest, event.media_type, event.size, event.tag) == (
        "push", image.digest, OCI_MANIFEST, len(image.body), "v1")
    assert event.url == f"http://registry.test:5000/v2/team/app/manifests/{image.digest}"


def test_manifest_push_by_digest_emits_one_event_per_tag_in_order(client: RegistryClient,
                                                                   seen: Recorder) -> None:
    """OCI 1.1 ``PUT /manifests/<digest>?tag=a&tag=b`` ("Pushing Manifests with tags")."""
    image = client.push_image("team/app", None)
    assert seen[-1].tag is None and seen[-1].kind == "manifest"  # by digest, no tag: one event
    seen.clear()
    client.app.put(f"/v2/team/app/manifests/{image.digest}?tag=a&tag=b", image.body,
                   content_type=OCI_MANIFEST, status=201)
    assert [(e.action, e.kind, e.digest, e.tag) for e in seen] == [
        ("push", "manifest", image.digest, "a"), ("push", "manifest", image.digest, "b")]
    assert seen[1].timestamp - seen[0].timestamp == timedelta(microseconds=1)
    assert seen[0].request.id == seen[1].request.id and seen[0].id != seen[1].id


def test_manifest_pulls_carry_the_tag_they_were_asked_by(client: RegistryClient, seen: Recorder) -> None:
    image = client.push_image("team/app", "v1")
    seen.clear()
    client.app.get("/v2/team/app/manifests/v1", status=200)
    by_tag = only(seen)
    assert (by_tag.action, by_tag.kind, by_tag.digest, by_tag.tag, by_tag.size, by_tag.media_type) == (
        "pull", "manifest", image.digest, "v1", len(image.body), OCI_MANIFEST)
    client.app.get(f"/v2/team/app/manifests/{image.digest}", status=200)
    assert only(seen).tag is None


def test_head_and_not_modified_are_no_pulls(client: RegistryClient, seen: Recorder) -> None:
    image = client.push_image("team/app", "v1")
    seen.clear()
    client.app.head("/v2/team/app/manifests/v1", status=200)
    client.app.head(f"/v2/team/app/blobs/{sha256(b'layer-one')}", status=200)
    client.app.get(f"/v2/team/app/manifests/{image.digest}", headers={"If-None-Match": f'"{image.digest}"'},
                   status=304)
    assert seen == []


def test_blob_get_is_a_pull_whole_or_ranged(client: RegistryClient, seen: Recorder) -> None:
    digest = client.push_blob("team/app", BLOB)
    seen.clear()
    client.app.get(f"/v2/team/app/blobs/{digest}", status=200)
    client.app.get(f"/v2/team/app/blobs/{digest}", headers={"Range": "bytes=2-5"}, status=206)
    assert [(e.action, e.kind, e.digest, e.size, e.media_type) for e in seen] == [
        ("pull", "blob", digest, len(BLOB), OCTET)] * 2


def test_deletes_carry_the_digest_or_the_tag_and_no_url(client: RegistryClient, seen: Recorder) -> None:
    image = client.push_image("team/app", "v1")
    seen.clear()
    client.app.delete("/v2/team/app/manifests/v1", status=202)
    tag = only(seen)
    assert (tag.action, tag.kind, tag.tag, tag.digest, tag.url) == ("delete", "tag", "v1", None, None)
    client.app.delete(f"/v2/team/app/manifests/{image.digest}", status=202)
    manifest = only(seen)
    assert (manifest.action, manifest.kind, manifest.digest, manifest.url) == (
        "delete", "manifest", image.digest, None)
    layer = sha256(b"layer-one")
    client.app.delete(f"/v2/team/app/blobs/{layer}", status=202)
    blob = only(seen)
    assert (blob.action, blob.kind, blob.digest, blob.size, blob.url) == ("delete", "blob", layer, None, None)


def test_failed_requests_emit_nothing(client: RegistryClient, seen: Recorder) -> None:
    client.app.post(f"/v2/team/app/blobs/uploads/?digest={sha256(b'other')}", BLOB, content_type=OCTET,
                    status=400)
    client.app.get("/v2/team/app/manifests/nope", status=404)
    client.app.delete(f"/v2/team/app/blobs/{sha256(BLOB)}", status=404)
    client.app.get(f"/v2/team/app/blobs/{sha256(BLOB)}", status=404)
    assert seen == []


def test_the_user_is_the_auth_hooks_identity(storage: Storage, seen: Recorder) -> None:
    registry = Registry(storage=storage, auth=BasicAuth(lambda user, pw: user if pw == "pw" else None))
    registry.events.subscribe(seen)
    app = webtest.TestApp(registry)
    app.authorization = ("Basic", ("alice", "pw"))
    RegistryClient(app).push_blob("team/app", BLOB)
    assert only(seen).user == "alice"


def test_the_request_id_of_an_outer_layer_is_used(app: webtest.TestApp, seen: Recorder) -> None:
    app.post(f"/v2/team/app/blobs/uploads/?digest={sha256(BLOB)}", BLOB, content_type=OCTET,
             extra_environ={REQUEST_ID_KEY: "set-by-the-log-middleware"}, status=201)
    assert only(seen).request.id == "set-by-the-log-middleware"


# -- subscribers ---------------------------------------------------------------------------------


def test_a_failing_subscriber_is_logged_and_the_request_succeeds(
    client: RegistryClient, registry: Registry, seen: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    after = Recorder()
    registry.events.subscribe(broken)
    registry.events.subscribe(after)
    with caplog.at_level(logging.ERROR, logger="docker_registry_wsgi.events"):
        client.push_blob("team/app", BLOB)  # 201, asserted inside
    assert len(seen) == len(after) == 1  # subscribers before and after the broken one ran
    [record] = [r for r in caplog.records if "subscriber" in r.getMessage()]
    assert "push blob team/app" in record.getMessage() and record.exc_info is not None


def test_subscribe_to_some_actions_only(client: RegistryClient, registry: Registry) -> None:
    deletes = Recorder()
    registry.events.subscribe(deletes, actions=["delete"])
    digest = client.push_blob("team/app", BLOB)
    client.app.get(f"/v2/team/app/blobs/{digest}")
    client.app.delete(f"/v2/team/app/blobs/{digest}", status=202)
    assert [(e.action, e.kind) for e in deletes] == [("delete", "blob")]


def test_unsubscribe(client: RegistryClient, registry: Registry, seen: Recorder) -> None:
    registry.events.unsubscribe(seen)
    client.push_blob("team/app", BLOB)
    assert seen == []


def test_subscribe_refuses_unknown_actions() -> None:
    hub = EventHub()
    with pytest.raises(ValueError, match="'pushed'"):
        hub.subscribe(print, actions=["pushed"])
    with pytest.raises(ValueError):
        hub.subscribe(print, actions="push")  # a string is not a list of actions


@pytest.mark.parametrize("subscriber", ["none", "inactive", "deletes only"])
def test_requests_build_no_events_nobody_listens_for(storage: Storage, subscriber: str) -> None:
    """Cheap when nobody listens: the handler records nothing and the hub is never asked to publish."""

    class CountingHub(EventHub):
        published = 0

        def publish_request(self, *args: Any, **kwargs: Any) -> list[Event]:
            self.published += 1
            return super().publish_request(*args, **kwargs)

    hub = CountingHub()
    if subscriber == "inactive":
        hub.subscribe(print, active=lambda: False)  # e.g. a framework signal without receivers
    elif subscriber == "deletes only":
        hub.subscribe(print, actions=["delete"])
    client = RegistryClient(webtest.TestApp(Registry(storage=storage, events=hub)))
    image = client.push_image("team/app", "v1")
    client.app.get(f"/v2/team/app/manifests/{image.digest}")
    assert hub.published == 0


def test_an_inactive_subscriber_is_skipped_but_an_active_one_served(storage: Storage) -> None:
    hub, quiet, loud = EventHub(), Recorder(), Recorder()
    hub.subscribe(quiet, active=lambda: False)
    hub.subscribe(loud)
    RegistryClient(webtest.TestApp(Registry(storage=storage, events=hub))).push_blob("team/app", BLOB)
    assert quiet == [] and len(loud) == 1


# -- the event's own forms -----------------------------------------------------------------------

optional_text = st.one_of(st.none(), st.text(max_size=20))


@st.composite
def events(draw: st.DrawFn) -> Event:
    now = draw(st.floats(0, 4e9))
    hub = EventHub(clock=lambda: now, instance_id=str(draw(st.uuids())))
    what = Happened(
        action=draw(st.sampled_from(ACTIONS)),
        kind=draw(st.sampled_from(["blob", "manifest", "tag"])),
        repository=draw(repository_names(max_components=3)),
        digest=draw(st.one_of(st.none(), digest_strings())),
        media_type=draw(optional_text),
        size=draw(st.one_of(st.none(), st.integers(0, 2**63 - 1))),
        tag=draw(st.one_of(st.none(), tags)),
        from_repository=draw(st.one_of(st.none(), repository_names(max_components=2))),
        url=draw(optional_text),
    )
    environ = {"REQUEST_METHOD": draw(st.sampled_from(["GET", "PUT", "POST", "DELETE"])),
               "HTTP_USER_AGENT": draw(st.text(max_size=30)), "REMOTE_ADDR": "192.0.2.1",
               "HTTP_HOST": draw(st.sampled_from(["", "r.test", "r.test:5000"])), "SERVER_PORT": "5000"}
    user = draw(st.one_of(st.none(), st.text(min_size=1, max_size=10)))
    [event] = hub.publish_request(environ, user, [what])
    return event


@FAST
@given(events())
def test_event_survives_its_stored_form(event: Event) -> None:
    import json

    assert Event.from_dict(json.loads(json.dumps(event.to_dict()))) == event


@FAST
@given(events())
def test_distribution_form_uses_distributions_field_names(event: Event) -> None:
    """notifications/event.go: Event, Target (a descriptor plus length, repository,
    fromRepository, url, tag), RequestRecord, ActorRecord, SourceRecord; empty fields omitted."""
    doc = event.to_distribution()
    assert set(doc) == {"id", "timestamp", "action", "target", "request", "actor", "source"}
    assert doc["id"] == event.id and doc["action"] == event.action
    assert set(doc["target"]) <= {"mediaType", "digest", "size", "length", "repository",
                                  "fromRepository", "url", "tag"}
    assert doc["target"]["repository"] == event.repository
    assert doc["target"].get("size") == doc["target"].get("length") == event.size
    assert doc["target"].get("digest") == event.digest and doc["target"].get("tag") == event.tag
    assert {"id", "method", "useragent"} <= set(doc["request"]) <= {"id", "addr", "host", "method", "useragent"}
    assert doc["actor"] == ({"name": event.user} if event.user else {})
    assert set(doc["source"]) == {"addr", "instanceID"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["timestamp"])


def test_parse_actions() -> None:
    assert parse_actions(None) == frozenset(ACTIONS)
    assert parse_actions(["push", "pull"]) == {"push", "pull"}
    for bad in ("push", ["push", "tag"], 3):
        with pytest.raises(ValueError):
            parse_actions(bad)


def test_the_hubs_clock_gives_the_time_in_utc(storage: Storage) -> None:
    hub, seen = EventHub(clock=lambda: 1_700_000_000.5), Recorder()
    hub.subscribe(seen)
    RegistryClient(webtest.TestApp(Registry(storage=storage, events=hub))).push_blob("team/app", BLOB)
    assert only(seen).timestamp == datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=timezone.utc)
