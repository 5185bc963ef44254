"""FailureThrottle: too many failed logins per user name or client address get 429, for a window.

Driven by an injected clock; no timing is measured. The WSGI tests check the answer the OCI
Distribution Spec names for it ("Error Codes": ``TOOMANYREQUESTS``, 429) and ``Retry-After``
(RFC 9110 section 10.2.3).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
import webtest

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth.htpasswd import HtpasswdAuth, HtpasswdFile
from docker_registry_wsgi.auth.issuer import TokenIssuer
from docker_registry_wsgi.auth.policy import RulePolicy
from docker_registry_wsgi.auth.throttle import FailureThrottle, Throttled
from docker_registry_wsgi.storage import MemoryStorage

from .conftest import FakeClock, basic, bcrypt_line

SERVICE = "registry.test"


class Checks:
    """A password check that records its calls: alice's password is ``pw``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, user: str, password: str) -> object:
        self.calls.append((user, password))
        return user if (user, password) == ("alice", "pw") else None


def test_refuses_after_limit_failures_within_the_window(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=3, window=60, clock=clock)
    for _ in range(2):
        assert throttle.failed("alice", "10.0.0.1") is None
        clock.now += 10
    assert throttle.retry_after("alice", "10.0.0.1") == 0
    # The third: the limit is reached, and said so for the log.
    assert throttle.failed("alice", "10.0.0.1") == "3 failed logins of user 'alice'"
    # The first failure was 20 s ago: it leaves the window in 40 s, and then one more try is free.
    assert throttle.retry_after("alice", "10.0.0.1") == 40
    assert throttle.retry_after("alice", "10.9.9.9") == 40  # per user, whatever the address
    assert throttle.retry_after("bob", "10.0.0.1") == 0  # the address is far from its limit
    clock.now += 39.5
    assert throttle.retry_after("alice", None) == 1  # rounded up, never 0 while refused
    clock.now += 0.5
    assert throttle.retry_after("alice", None) == 0


def test_failures_spread_over_more_than_the_window_never_refuse(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=3, window=60, clock=clock)
    for _ in range(10):
        assert throttle.failed("alice", None) is None
        assert throttle.retry_after("alice", None) == 0
        clock.now += 30.5


def test_per_address_limit(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=100, window=60, address_limit=4, clock=clock)
    for n in range(3):
        assert throttle.failed(f"user{n}", "192.0.2.7") is None
    assert throttle.failed("user3", "192.0.2.7") == "4 failed logins of address 192.0.2.7"
    assert throttle.retry_after("someone-new", "192.0.2.7") == 60
    assert throttle.retry_after("someone-new", "192.0.2.8") == 0
    assert throttle.retry_after("someone-new", None) == 0  # no address known: user count only


def test_zero_limits_turn_counts_off(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=0, address_limit=0, clock=clock)
    assert not throttle.enabled
    for _ in range(50):
        assert throttle.failed("alice", "10.0.0.1") is None
    assert throttle.retry_after("alice", "10.0.0.1") == 0 and throttle.tracked == 0
    users_only = FailureThrottle(limit=2, address_limit=0, clock=clock)
    for n in range(10):
        users_only.failed(f"u{n}", "10.0.0.1")
    assert users_only.retry_after("new", "10.0.0.1") == 0 and users_only.tracked == 10


def test_memory_is_bounded_least_recently_failed_forgotten_first(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=2, window=60, address_limit=0, max_keys=3, clock=clock)
    throttle.failed("a", None)
    throttle.failed("a", None)
    throttle.failed("b", None)
    throttle.failed("c", None)
    throttle.failed("a", None)  # a is the most recent again
    throttle.failed("d", None)  # evicts b, the least recently failed
    assert throttle.tracked == 3
    assert throttle.retry_after("a", None) == 60
    throttle.failed("b", None)  # b starts over: one failure, c is evicted
    assert throttle.retry_after("b", None) == 0
    assert throttle.tracked == 3


def test_expired_failures_are_dropped(clock: FakeClock) -> None:
    throttle = FailureThrottle(limit=2, window=60, clock=clock)
    throttle.failed("alice", "10.0.0.1")
    assert throttle.tracked == 2
    clock.now += 60
    assert throttle.retry_after("alice", "10.0.0.1") == 0
    assert throttle.tracked == 0


def test_user_names_are_not_kept_as_sent(clock: FakeClock) -> None:
    throttle = FailureThrottle(clock=clock)
    throttle.failed("alice-the-admin", None)
    assert all(b"alice-the-admin" not in key[1] for key in throttle._failures)


@pytest.mark.parametrize("kw", [{"limit": -1}, {"address_limit": -1}, {"window": 0}, {"max_keys": 0}])
def test_bad_settings(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        FailureThrottle(**kw)


def test_check_counts_failures_and_refuses_without_hashing(clock: FakeClock,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    throttle = FailureThrottle(limit=2, window=60, clock=clock)
    checks = Checks()
    assert throttle.check(checks, "alice", "x", "10.0.0.1") is None
    with caplog.at_level(logging.WARNING, "docker_registry_wsgi.auth.throttle"):
        assert throttle.check(checks, "alice", "y", "10.0.0.1") is None
    assert [r.getMessage() for r in caplog.records] == [
        "2 failed logins of user 'alice' within 60 s: further password checks are refused with 429 "
        "until older failures expire"]
    with pytest.raises(Throttled) as info:
        throttle.check(checks, "alice", "pw", "10.0.0.1")  # even the right password
    assert info.value.retry_after == 60
    assert checks.calls == [("alice", "x"), ("alice", "y")]
    clock.now += 60
    assert throttle.check(checks, "alice", "pw", "10.0.0.1") == "alice"  # not locked forever


def test_check_lets_a_remembered_pair_through_while_throttled(clock: FakeClock) -> None:
    """An attacker failing alice's name does not break the push she is in the middle of."""
    throttle = FailureThrottle(limit=2, window=60, clock=clock)
    checks = Checks()
    remembered = {("alice", "pw"): "alice"}

    def cached(user: str, password: str) -> object:
        return remembered.get((user, password))

    for guess in ("a", "b"):
        throttle.check(checks, "alice", guess, "198.51.100.1", cached=cached)
    assert throttle.check(checks, "alice", "pw", "10.0.0.1", cached=cached) == "alice"
    with pytest.raises(Throttled):
        throttle.check(checks, "alice", "c", "198.51.100.1", cached=cached)
    assert checks.calls == [("alice", "a"), ("alice", "b")]


# -- over WSGI -------------------------------------------------------------------------------


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.htpasswd"
    path.write_text(bcrypt_line("alice", "wonderland") + "\n" + bcrypt_line("bob", "builder") + "\n")
    return path


def _registry(users_file: Path, throttle: FailureThrottle) -> webtest.TestApp:
    auth = HtpasswdAuth(users_file, realm="t", throttle=throttle)
    return webtest.TestApp(Registry(storage=MemoryStorage(), auth=auth),
                           extra_environ={"REMOTE_ADDR": "203.0.113.5"})


def test_registry_answers_429_after_the_limit_then_recovers(users_file: Path, clock: FakeClock) -> None:
    app = _registry(users_file, FailureThrottle(limit=3, window=60, clock=clock))
    for _ in range(3):
        res = app.get("/v2/", headers={"Authorization": basic("alice", "nope")}, status=401)
        assert res.json["errors"][0]["code"] == "UNAUTHORIZED"
    res = app.get("/v2/", headers={"Authorization": basic("alice", "wonderland")}, status=429)
    assert res.json["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert res.headers["Retry-After"] == "60"
    assert "WWW-Authenticate" not in res.headers
    app.get("/v2/", headers={"Authorization": basic("bob", "builder")}, status=200)
    clock.now += 60
    app.get("/v2/", headers={"Authorization": basic("alice", "wonderland")}, status=200)


def test_registry_throttles_one_address_across_user_names(users_file: Path, clock: FakeClock) -> None:
    app = _registry(users_file, FailureThrottle(limit=10, window=60, address_limit=3, clock=clock))
    for name in ("mallory", "trent", "eve"):
        app.get("/v2/", headers={"Authorization": basic(name, "x")}, status=401)
    res = app.get("/v2/", headers={"Authorization": basic("bob", "builder")}, status=429)
    assert res.json["errors"][0]["code"] == "TOOMANYREQUESTS"
    app.get("/v2/", headers={"Authorization": basic("bob", "builder")}, status=200,
            extra_environ={"REMOTE_ADDR": "203.0.113.6"})


def test_registry_lets_a_verified_user_continue_while_her_name_is_throttled(
    users_file: Path, clock: FakeClock
) -> None:
    app = _registry(users_file, FailureThrottle(limit=2, window=60, address_limit=0, clock=clock))
    app.get("/v2/", headers={"Authorization": basic("alice", "wonderland")}, status=200)
    for guess in ("a", "b"):
        app.get("/v2/", headers={"Authorization": basic("alice", guess)}, status=401)
    app.get("/v2/", headers={"Authorization": basic("alice", "wonderland")}, status=200)
    app.get("/v2/", headers={"Authorization": basic("alice", "c")}, status=429)


def test_htpasswd_auth_has_a_throttle_of_its_own_by_default(users_file: Path) -> None:
    first, second = HtpasswdAuth(users_file), HtpasswdAuth(users_file)
    assert isinstance(first.throttle, FailureThrottle) and first.throttle.enabled
    assert first.throttle is not second.throttle


def test_issuer_answers_429_with_retry_after(users_file: Path, ec_key: Any, clock: FakeClock) -> None:
    users = HtpasswdFile(users_file)
    issuer = webtest.TestApp(TokenIssuer(
        ec_key, issuer="issuer.test", service=SERVICE, verify=users.verify, cached=users.cached,
        policy=RulePolicy.from_mapping({"rules": [{"repositories": ["*"], "users": ["*"], "actions": ["pull"]}]}),
        throttle=FailureThrottle(limit=2, window=60, clock=clock), clock=clock,
    ))
    issuer.get("/", {"service": SERVICE}, headers={"Authorization": basic("alice", "x")}, status=401)
    issuer.post("/", {"grant_type": "password", "username": "alice", "password": "y", "service": SERVICE},
                status=400)
    for res in (
        issuer.get("/", {"service": SERVICE}, headers={"Authorization": basic("alice", "wonderland")}, status=429),
        issuer.post("/", {"grant_type": "password", "username": "alice", "password": "wonderland",
                          "service": SERVICE}, status=429),
    ):
        assert res.json["error"] == "too_many_requests" and res.headers["Retry-After"] == "60"
        assert "token" not in res.json
    clock.now += 60
    issuer.get("/", {"service": SERVICE}, headers={"Authorization": basic("alice", "wonderland")}, status=200)
