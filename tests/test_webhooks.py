"""docker_registry_wsgi.webhooks: the outbox a request writes, and delivery at least once.

A real HTTP receiver on loopback (tests/support/webhook_receiver.py) answers, fails with 500s,
closes its port and comes back. The dispatcher is driven one step at a time (``run_once``) with
an injected clock: no test sleeps or times anything. Body formats: distribution's notification
envelope (distribution notifications/event.go, docs/content/about/notifications.md) and
CloudEvents 1.0 structured mode (JSON format: specversion, id, source, type, time, subject,
datacontenttype, data).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import logging
import tomllib
from typing import Any, Iterator

import pytest
import webtest
from hypothesis import given, strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.events import ACTIONS, Event, EventHub, Happened
from docker_registry_wsgi.storage import MemoryStorage, Storage
from docker_registry_wsgi.storage.base import StorageFull
from docker_registry_wsgi.webhooks import (
    CLOUDEVENTS_MEDIA_TYPE,
    DISTRIBUTION_MEDIA_TYPE,
    SIGNATURE_HEADER,
    Dispatcher,
    DispatchReport,
    Endpoint,
    Outbox,
    WebhookConfig,
    WebhookConfigError,
    add_arguments,
    build,
    install,
    signature,
)
from tests.handlers import OCI_MANIFEST, RegistryClient, sha256
from tests.support.webhook_receiver import Receiver
from tests.unit_fixtures import QUICK

SECRET = "s3cret-key"
T0 = 1_750_000_000.0


class Clock:
    """Wall-clock seconds that move only when a test moves them."""

    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingStorage(MemoryStorage):
    """Memory storage that records each call on a key below ``events/``: (method, key, detail)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, Any]] = []

    def _note(self, method: str, key: str, detail: Any = None) -> None:
        if key.startswith("events/"):
            self.calls.append((method, key, detail))

    def write(self, key: str, data: Any, *, if_absent: bool = False) -> bool:
        self._note("write", key, if_absent)
        return super().write(key, data, if_absent=if_absent)

    def read(self, key: str) -> bytes:
        self._note("read", key)
        return super().read(key)

    def read_versioned(self, key: str) -> tuple[bytes, str]:
        self._note("read_versioned", key)
        return super().read_versioned(key)

    def swap(self, key: str, data: bytes, version: str | None) -> str:
        self._note("swap", key)
        return super().swap(key, data, version)

    def delete(self, key: str) -> bool:
        self._note("delete", key)
        return super().delete(key)

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[str]:
        self._note("list", prefix)
        return super().list(prefix, start_after=start_after)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def setup(storage: Storage, clock: Clock, *endpoints: Endpoint, **options: Any
          ) -> tuple[RegistryClient, Dispatcher]:
    """A registry whose events go to ``endpoints``, and its (not started) dispatcher."""
    registry = Registry(storage=storage, events=EventHub(clock=clock))
    dispatcher = install(registry, WebhookConfig(endpoints), clock=clock, **options)
    app = webtest.TestApp(registry, extra_environ={"HTTP_HOST": "registry.test:5000",
                                                   "HTTP_USER_AGENT": "test-client/1.0"})
    return RegistryClient(app), dispatcher


def bodies(received: list[Any]) -> list[dict[str, Any]]:
    """The one event of each distribution envelope, in arrival order."""
    events = []
    for request in received:
        envelope = request.json()
        assert list(envelope) == ["events"] and len(envelope["events"]) == 1
        events.append(envelope["events"][0])
    return events


# -- the request path --------------------------------------------------------------------------


def test_the_request_path_writes_one_outbox_object_per_event_and_nothing_else(
    clock: Clock, webhook_receiver: Receiver
) -> None:
    """A dead endpoint cannot slow a push: the only webhook work in a request is one storage write."""
    storage = CountingStorage()
    webhook_receiver.stop()  # the endpoint is down: its port refuses connections
    client, dispatcher = setup(storage, clock, Endpoint(webhook_receiver.url))
    client.push_image("team/app", "v1")  # config blob, layer blob, manifest: three events
    assert [(method, key.rsplit("/", 1)[0], detail) for method, key, detail in storage.calls] == [
        ("write", "events/outbox", True)] * 3
    assert dispatcher.backlog() == {"outbox": 3, dispatcher.config.endpoints[0].name: 0}


def test_actions_no_endpoint_wants_cost_nothing(clock: Clock, webhook_receiver: Receiver) -> None:
    storage = CountingStorage()
    client, _ = setup(storage, clock, Endpoint(webhook_receiver.url, actions=frozenset({"delete"})))
    digest = client.push_blob("team/app", b"layer")
    client.app.get(f"/v2/team/app/blobs/{digest}")
    assert storage.calls == []
    client.app.delete(f"/v2/team/app/blobs/{digest}", status=202)
    assert [m for m, _, _ in storage.calls] == ["write"]


def test_an_outbox_write_that_fails_is_logged_and_the_request_succeeds(
    clock: Clock, webhook_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    class FullForEvents(MemoryStorage):
        def write(self, key: str, data: Any, *, if_absent: bool = False) -> bool:
            if key.startswith("events/"):
                raise StorageFull("no space left on device")
            return super().write(key, data, if_absent=if_absent)

    client, _ = setup(FullForEvents(), clock, Endpoint(webhook_receiver.url))
    with caplog.at_level(logging.ERROR, logger="docker_registry_wsgi.webhooks"):
        client.push_blob("team/app", b"layer")  # 201 all the same
    assert any("lost" in r.getMessage() and "push blob team/app" in r.getMessage() for r in caplog.records)


# -- delivery ------------------------------------------------------------------------------------


def test_events_arrive_in_order_signed_in_distributions_envelope(
    storage: Storage, clock: Clock, webhook_receiver: Receiver
) -> None:
    endpoint = Endpoint(webhook_receiver.url + "/hook", secret=SECRET, headers={"Authorization": "Bearer t"})
    client, dispatcher = setup(storage, clock, endpoint)
    image = client.push_image("team/app", "v1")
    report = dispatcher.run_once()
    assert report.leader and report.queued == 3 and report.delivered == {endpoint.name: 3}
    received = webhook_receiver.accepted("/hook")
    events = bodies(received)
    assert [(e["action"], e["target"]["digest"]) for e in events] == [
        ("push", sha256(b'{"architecture":"amd64","os":"linux"}')), ("push", sha256(b"layer-one")),
        ("push", image.digest)]
    for request in received:
        assert request.headers["Content-Type"] == DISTRIBUTION_MEDIA_TYPE
        assert request.headers["Authorization"] == "Bearer t"
        expected = "sha256=" + hmac.new(SECRET.encode(), request.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request.headers[SIGNATURE_HEADER], expected)
    manifest = events[2]
    # The field names and presence of distribution's example manifest push (notifications.md).
    assert manifest["target"] == {
        "mediaType": OCI_MANIFEST, "digest": image.digest, "size": len(image.body),
        "length": len(image.body), "repository": "team/app",
        "url": f"http://registry.test:5000/v2/team/app/manifests/{image.digest}", "tag": "v1"}
    assert set(manifest["request"]) == {"id", "host", "method", "useragent"}  # no REMOTE_ADDR here
    assert (manifest["request"]["method"], manifest["request"]["host"]) == ("PUT", "registry.test:5000")
    assert manifest["actor"] == {} and set(manifest["source"]) == {"addr", "instanceID"}
    assert dispatcher.backlog() == {"outbox": 0, endpoint.name: 0}


def test_failures_back_off_and_every_event_arrives_once_the_endpoint_recovers(
    storage: Storage, clock: Clock, webhook_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(webhook_receiver.url, backoff=1, max_backoff=30)
    client, dispatcher = setup(storage, clock, endpoint)
    image = client.push_image("team/app", "v1")
    pushed = [sha256(b'{"architecture":"amd64","os":"linux"}'), sha256(b"layer-one"), image.digest]

    webhook_receiver.fail(500, 500)
    with caplog.at_level(logging.WARNING, logger="docker_registry_wsgi.webhooks"):
        assert dispatcher.run_once().failed == {endpoint.name: "HTTP 500"}
        assert dispatcher.run_once().failed == {}  # backing off: not even tried
        assert len(webhook_receiver.requests) == 1
        clock.advance(1)
        assert dispatcher.run_once().failed == {endpoint.name: "HTTP 500"}
        webhook_receiver.stop()
        clock.advance(1.9)
        dispatcher.run_once()
        assert len(webhook_receiver.requests) == 2  # the second backoff is 2 s
        clock.advance(0.1)
        assert "Connection refused" in dispatcher.run_once().failed[endpoint.name]
    failures = [r.getMessage() for r in caplog.records if " failed " in r.getMessage()]
    assert len(failures) == 3
    assert failures[0].endswith("failed (HTTP 500); attempt 1, next in 1s")
    assert failures[1].endswith("failed (HTTP 500); attempt 2, next in 2s")
    assert "Connection refused" in failures[2] and failures[2].endswith("attempt 3, next in 4s")

    webhook_receiver.restart()
    clock.advance(4)
    assert dispatcher.run_once().delivered == {endpoint.name: 3}
    assert [e["target"]["digest"] for e in bodies(webhook_receiver.accepted())] == pushed
    # The first event was offered three times (two 500s, one refused) and accepted once.
    assert [r.status for r in webhook_receiver.requests] == [500, 500, 202, 202, 202]
    assert len({e["id"] for e in bodies(webhook_receiver.requests)}) == 3


def test_backoff_doubles_up_to_its_ceiling(storage: Storage, clock: Clock, webhook_receiver: Receiver) -> None:
    endpoint = Endpoint(webhook_receiver.url, backoff=2, max_backoff=5)
    client, dispatcher = setup(storage, clock, endpoint)
    client.push_blob("team/app", b"layer")
    webhook_receiver.fail(*[503] * 4)
    attempts = []
    for _ in range(12):
        before = len(webhook_receiver.requests)
        dispatcher.run_once()
        if len(webhook_receiver.requests) > before:
            attempts.append(clock.now - T0)
        clock.advance(1)
    assert attempts == [0, 2, 6, 11]  # waits of 2, 4, then 5 (the ceiling, not 8)


def test_a_new_dispatcher_delivers_what_a_crashed_one_left(
    storage: Storage, clock: Clock, webhook_receiver: Receiver
) -> None:
    endpoint = Endpoint(webhook_receiver.url)
    client, first = setup(storage, clock, endpoint)
    client.push_blob("team/app", b"one")
    client.push_blob("team/app", b"two")
    webhook_receiver.fail(500)
    first.run_once()  # queued both, failed the first: the process then dies without stop()

    second = Dispatcher(storage, WebhookConfig((endpoint,)), clock=clock)  # a restarted process
    assert second.run_once().leader is False  # the dead one's lease has not run out yet
    clock.advance(30)
    assert second.run_once().delivered == {endpoint.name: 2}
    assert [e["target"]["digest"] for e in bodies(webhook_receiver.accepted())] == [
        sha256(b"one"), sha256(b"two")]


def test_stop_gives_the_lease_up_for_the_next_process(
    storage: Storage, clock: Clock, webhook_receiver: Receiver
) -> None:
    endpoint = Endpoint(webhook_receiver.url)
    client, first = setup(storage, clock, endpoint)
    assert first.run_once().leader
    first.stop()
    client.push_blob("team/app", b"one")
    second = Dispatcher(storage, WebhookConfig((endpoint,)), clock=clock)
    assert second.run_once().delivered == {endpoint.name: 1}


def test_while_one_process_delivers_another_does_not(
    storage: Storage, clock: Clock, webhook_receiver: Receiver
) -> None:
    """Two dispatchers over one storage: the second runs while the first's POST is held open."""
    import threading

    endpoint = Endpoint(webhook_receiver.url)
    client, first = setup(storage, clock, endpoint)
    second = Dispatcher(storage, WebhookConfig((endpoint,)), clock=clock)
    client.push_blob("team/app", b"layer")
    webhook_receiver.hold_next()
    delivering = threading.Thread(target=first.run_once)
    delivering.start()
    try:
        assert webhook_receiver.entered.wait(30), "the first dispatcher never POSTed"
        report = second.run_once()  # the event is queued and not yet deleted: it would go twice
    finally:
        webhook_receiver.release()
        delivering.join(30)
    assert report.leader is False and report.delivered == {}
    assert [e["target"]["digest"] for e in bodies(webhook_receiver.requests)] == [sha256(b"layer")]
    clock.advance(31)  # the first stopped renewing: the second takes over and finds nothing left
    assert second.run_once() == DispatchReport(leader=True)
    assert len(webhook_receiver.requests) == 1


def test_events_older_than_the_retention_are_dropped_with_a_log_line(
    storage: Storage, clock: Clock, webhook_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = Endpoint(webhook_receiver.url, retention=3600, max_backoff=600)
    client, dispatcher = setup(storage, clock, endpoint)
    client.push_blob("team/app", b"old")
    webhook_receiver.stop()
    dispatcher.run_once()
    clock.advance(3000)
    client.push_blob("team/app", b"new")
    clock.advance(601)  # the first event is now 3601 s old, the second 601 s
    webhook_receiver.restart()
    with caplog.at_level(logging.WARNING, logger="docker_registry_wsgi.webhooks"):
        report = dispatcher.run_once()
    assert report.dropped == {endpoint.name: 1} and report.delivered == {endpoint.name: 1}
    assert [e["target"]["digest"] for e in bodies(webhook_receiver.accepted())] == [sha256(b"new")]
    [line] = [r.getMessage() for r in caplog.records if "dropping" in r.getMessage()]
    assert f"push blob team/app" in line and "not delivered within 1h" in line


def test_a_redirect_counts_as_delivered_and_is_not_followed(
    storage: Storage, clock: Clock, webhook_receiver: Receiver
) -> None:
    """distribution: "any 2xx or 3xx response code ... is considered to have been delivered"."""
    client, dispatcher = setup(storage, clock, Endpoint(webhook_receiver.url))
    client.push_blob("team/app", b"layer")
    webhook_receiver.fail(302)
    dispatcher.run_once()
    assert [(r.path, r.status) for r in webhook_receiver.requests] == [("/", 302)]
    assert dispatcher.backlog()["outbox"] == 0 and sum(dispatcher.backlog().values()) == 0


def test_unreadable_objects_are_dropped_with_a_log_line(
    clock: Clock, webhook_receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    storage = MemoryStorage()
    endpoint = Endpoint(webhook_receiver.url)
    dispatcher = Dispatcher(storage, WebhookConfig((endpoint,)), clock=clock)
    storage.write("events/outbox/0000000000000001-x", b"not json")
    storage.write(f"events/queue/{endpoint.name}/0000000000000002-y", b'{"v": 1, "event": {}}')
    with caplog.at_level(logging.ERROR, logger="docker_registry_wsgi.webhooks"):
        report = dispatcher.run_once()
    assert report.dropped == {endpoint.name: 1} and webhook_receiver.requests == []
    assert sum(1 for r in caplog.records if "unreadable" in r.getMessage()) == 2
    assert list(storage.list("events/")) == ["lease"]


def test_cloudevents_structured_mode(storage: Storage, clock: Clock, webhook_receiver: Receiver) -> None:
    endpoint = Endpoint(webhook_receiver.url, format="cloudevents", secret=SECRET)
    client, dispatcher = setup(storage, clock, endpoint)
    image = client.push_image("team/app", "v1", layers=())
    dispatcher.run_once()
    request = webhook_receiver.accepted()[-1]
    assert request.headers["Content-Type"] == CLOUDEVENTS_MEDIA_TYPE
    assert request.headers[SIGNATURE_HEADER] == signature(SECRET, request.body)
    cloud_event = request.json()
    assert set(cloud_event) == {"specversion", "id", "source", "type", "time", "subject",
                                "datacontenttype", "data"}
    assert cloud_event["specversion"] == "1.0"
    assert cloud_event["type"] == "docker-registry-wsgi.manifest.push"
    assert cloud_event["source"] == "//registry.test:5000/v2/team/app"
    assert cloud_event["subject"] == f"team/app:v1@{image.digest}"
    assert cloud_event["id"] == cloud_event["data"]["id"]
    assert cloud_event["time"] == cloud_event["data"]["timestamp"]
    assert cloud_event["data"]["target"]["digest"] == image.digest


# -- filters -------------------------------------------------------------------------------------

_GLOBS = st.lists(st.sampled_from(["team/*", "*/app", "team/?pp", "lib*", "*", "[ab]*/x"]), max_size=2)
_FILTERS = st.tuples(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=4, unique=True), _GLOBS)
_HAPPENINGS = st.lists(st.tuples(st.sampled_from(ACTIONS),
                                 st.sampled_from(["team/app", "team/bpp", "lib/x", "a/x", "b/app", "c"])),
                       min_size=1, max_size=8)


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[Receiver]:
    """One receiver for every hypothesis example (each endpoint POSTs to a path of its own)."""
    receiver = Receiver()
    yield receiver
    receiver.stop()


@QUICK
@given(filters=st.lists(_FILTERS, min_size=1, max_size=3), happenings=_HAPPENINGS)
def test_each_endpoint_gets_exactly_the_events_its_filters_match_in_order(
    shared_receiver: Receiver, filters: list[tuple[list[str], list[str]]],
    happenings: list[tuple[str, str]]
) -> None:
    """Actions are a set; repository globs are shell globs on the whole name (``*`` crosses ``/``)."""
    import fnmatch

    shared_receiver.clear()
    clock = Clock()
    endpoints = tuple(Endpoint(f"{shared_receiver.url}/e{i}", name=f"e{i}", actions=frozenset(actions),
                               repositories=tuple(globs))
                      for i, (actions, globs) in enumerate(filters))
    storage = MemoryStorage()
    config = WebhookConfig(endpoints)
    hub = EventHub(clock=clock)
    hub.subscribe(Outbox(storage, config))
    published = []
    for action, repository in happenings:
        published += hub.publish_request({"REQUEST_METHOD": "PUT"}, None, [Happened(action, "blob", repository)])
        clock.advance(0.001)
    Dispatcher(storage, config, clock=clock).run_once()
    for endpoint, (actions, globs) in zip(endpoints, filters):
        wanted = [e.id for e in published if e.action in actions
                  and (not globs or any(fnmatch.fnmatchcase(e.repository, g) for g in globs))]
        assert [e["id"] for e in bodies(shared_receiver.accepted(f"/{endpoint.name}"))] == wanted
    assert list(storage.list("events/")) == ["lease"]


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    ({}, "url is required"),
    ({"url": "ftp://x/"}, "url must be an http"),
    ({"url": "http:///path"}, "url must be an http"),
    ({"url": "http://x/\nHost: y"}, "url must be an http"),
    ({"url": "http://x/", "format": "json"}, "format must be one of distribution, cloudevents"),
    ({"url": "http://x/", "actions": ["push", "tag"]}, "actions: unknown action(s) 'tag'"),
    ({"url": "http://x/", "actions": "push"}, "actions: expected a list"),
    ({"url": "http://x/", "actions": []}, "actions: name at least one"),
    ({"url": "http://x/", "repositories": "team/*"}, "repositories: expected a list"),
    ({"url": "http://x/", "repositories": ["Team/*"]}, "repositories: glob 'Team/*' can never match"),
    ({"url": "http://x/\u00e9t\u00e9"}, "url must be an http"),
    ({"url": "http://x/", "headers": {"X-A": "1\r\nX-B: 2"}}, "headers: X-A must be one line"),
    ({"url": "http://x/", "headers": {"X-A": "\u2603"}}, "headers: X-A must be one line"),
    ({"url": "http://x/", "headers": {"Bad Name": "1"}}, "is not a header name"),
    ({"url": "http://x/", "headers": {SIGNATURE_HEADER: "x"}}, "is set from the secret"),
    ({"url": "http://x/", "headers": ["a"]}, "headers: expected a table"),
    ({"url": "http://x/", "secret": ""}, "secret must be a non-empty string"),
    ({"url": "http://x/", "timeout": 0}, "timeout must be more than 0"),
    ({"url": "http://x/", "retention": "7 days"}, "retention: bad duration"),
    ({"url": "http://x/", "name": "../up"}, "name must be 1-64"),
    ({"url": "http://x/", "secrets": "x"}, "unknown key(s) secrets"),
])
def test_bad_endpoint_settings_name_the_entry_and_key(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(WebhookConfigError) as raised:
        Endpoint.from_mapping(entry, where="webhooks[2]")
    assert str(raised.value).startswith("webhooks[2]: ") and message in str(raised.value)


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                    st.text(max_size=12), st.lists(st.text(max_size=6), max_size=3),
                    st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=2))


@QUICK
@given(st.dictionaries(st.sampled_from(["url", "name", "headers", "secret", "actions", "repositories",
                                        "format", "timeout", "retention", "backoff", "max_backoff"]),
                       _VALUES, max_size=6),
       st.sampled_from(["http://hooks.test/x", "https://h.test:8443/"]))
def test_any_settings_give_an_endpoint_or_a_config_error(entry: dict[str, Any], url: str) -> None:
    """The parser never raises anything but WebhookConfigError, and what it accepts is usable."""
    entry = {"url": url, **{k: v for k, v in entry.items() if k != "url"}}
    try:
        endpoint = Endpoint.from_mapping(entry)
    except WebhookConfigError:
        return
    assert endpoint.actions <= set(ACTIONS) and endpoint.timeout > 0 and endpoint.retention > 0
    body, headers = endpoint.render(_an_event())
    assert json.loads(body) and headers["Content-Type"] in (DISTRIBUTION_MEDIA_TYPE, CLOUDEVENTS_MEDIA_TYPE)


def _an_event() -> Event:
    [event] = EventHub().publish_request({"REQUEST_METHOD": "PUT"}, "alice",
                                         [Happened("push", "manifest", "team/app", digest=sha256(b"m"))])
    return event


@pytest.mark.parametrize("entries", [{"url": "http://x/"}, "http://x/", 3])
def test_the_webhooks_entry_must_be_a_list_of_tables(entries: Any) -> None:
    with pytest.raises(WebhookConfigError, match=r"\[\[webhooks\]\]"):
        WebhookConfig.from_mappings(entries)
    with pytest.raises(WebhookConfigError, match=r"webhooks\[1\]: expected a table"):
        WebhookConfig.from_mappings([{"url": "http://x/"}, "http://y/"])


def test_two_endpoints_need_distinct_names() -> None:
    with pytest.raises(WebhookConfigError, match="share the name"):
        WebhookConfig((Endpoint("http://x/"), Endpoint("http://x/", actions=frozenset({"push"}))))
    WebhookConfig((Endpoint("http://x/", name="all"), Endpoint("http://x/", name="pushes")))


def parse(argv: list[str], env: dict[str, str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, env or {})
    return parser.parse_args(argv)


def test_no_webhooks_by_default() -> None:
    assert build(parse([])) is None


def test_webhook_urls_from_the_environment_and_the_command_line() -> None:
    env = {"REGISTRY_WEBHOOK_URLS": "http://a.test/ http://b.test/", "REGISTRY_WEBHOOK_SECRET": "k",
           "REGISTRY_WEBHOOK_ACTIONS": "push,delete", "REGISTRY_WEBHOOK_RETENTION": "36h"}
    config = build(parse([], env))
    assert config is not None
    assert [e.url for e in config.endpoints] == ["http://a.test/", "http://b.test/"]
    assert {(e.secret, e.actions, e.retention) for e in config.endpoints} == {
        ("k", frozenset({"push", "delete"}), 36 * 3600.0)}
    # The command line replaces the environment's list rather than adding to it.
    config = build(parse(["--webhook-url", "http://c.test/", "--webhook-url", "http://d.test/",
                          "--webhook-format", "cloudevents"], env))
    assert config is not None
    assert [(e.url, e.format) for e in config.endpoints] == [("http://c.test/", "cloudevents"),
                                                              ("http://d.test/", "cloudevents")]


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(WebhookConfigError, match="--webhook-retention"):
        build(parse(["--webhook-url", "http://a.test/", "--webhook-retention", "soon"]))
    with pytest.raises(WebhookConfigError, match="--webhook-url http://a.test/: .*'pul'"):
        build(parse(["--webhook-url", "http://a.test/", "--webhook-actions", "push,pul"]))


def test_the_documented_toml_shape() -> None:
    """The ``[[webhooks]]`` example of docs/events.rst, read as the config file would be."""
    text = """
        [[webhooks]]
        name = "ci"
        url = "https://ci.example.com/registry-events"
        secret = "a long random string"
        actions = ["push"]
        repositories = ["team/*", "library/*"]
        timeout = "10s"
        retention = "7d"

        [webhooks.headers]
        Authorization = "Bearer 0123456789"

        [[webhooks]]
        url = "https://audit.example.com/cloudevents"
        format = "cloudevents"
        actions = ["push", "delete"]
    """
    config = build(parse(["--webhook-retention", "2d"]), tomllib.loads(text)["webhooks"])
    assert config is not None
    ci, audit = config.endpoints
    assert (ci.name, ci.actions, ci.repositories, ci.timeout, ci.retention, dict(ci.headers)) == (
        "ci", {"push"}, ("team/*", "library/*"), 10.0, 7 * 86400.0, {"Authorization": "Bearer 0123456789"})
    assert (audit.format, audit.retention, audit.secret) == ("cloudevents", 2 * 86400.0, None)


def test_the_lease_outlasts_three_timeouts(clock: Clock) -> None:
    config = WebhookConfig((Endpoint("http://x/", timeout=20),))
    with pytest.raises(ValueError, match="three endpoint timeouts"):
        Dispatcher(MemoryStorage(), config, lease_ttl=30)
    storage = MemoryStorage()
    Dispatcher(storage, config, clock=clock).run_once()
    assert json.loads(storage.read("events/lease"))["expires"] == T0 + 60  # by default


# -- the threads the server runs -------------------------------------------------------------------


def test_started_dispatcher_delivers_a_push_of_this_process_without_polling(
    storage: Storage, webhook_receiver: Receiver
) -> None:
    """The outbox wakes the dispatcher; the poll interval is an hour, so only the wake-up can deliver."""
    registry = Registry(storage=storage)
    dispatcher = install(registry, WebhookConfig((Endpoint(webhook_receiver.url),)), poll_interval=3600)
    dispatcher.start()
    try:
        with pytest.raises(RuntimeError):  # already running
            dispatcher.start()
        RegistryClient(webtest.TestApp(registry)).push_blob("team/app", b"layer")
        assert webhook_receiver.arrived.wait(30), "no delivery within 30 s"
    finally:
        dispatcher.stop(timeout=30)
    assert [e["target"]["digest"] for e in bodies(webhook_receiver.accepted())] == [sha256(b"layer")]
    lease = json.loads(storage.read("events/lease"))
    assert lease["owner"] == dispatcher.owner and lease["expires"] == 0  # given up at stop
