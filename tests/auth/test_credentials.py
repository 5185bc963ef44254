"""CachedPasswordCheck: good passwords remembered for a while, bad ones never; one check per
pair at a time; forget() wins over checks under way.

The races are driven by Events: the wrapped password function holds the first check at a chosen
point, and :class:`WatchedCheck` says when a second caller is waiting for it.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable

import pytest

from docker_registry_wsgi.auth.credentials import CachedPasswordCheck, _Flight


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Users:
    """A password check that counts its calls."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords
        self.calls: list[str] = []

    def __call__(self, name: str, password: str) -> object:
        self.calls.append(name)
        return {"name": name} if self.passwords.get(name) == password else None


def test_a_good_password_is_checked_once_within_the_ttl() -> None:
    users, clock = Users({"alice": "pw"}), Clock()
    check = CachedPasswordCheck(users, ttl=60, clock=clock)
    first = check("alice", "pw")
    assert first == {"name": "alice"}
    clock.now += 59
    assert check("alice", "pw") is first
    assert users.calls == ["alice"]
    clock.now += 2
    assert check("alice", "pw") == {"name": "alice"}
    assert users.calls == ["alice", "alice"]


def test_failures_are_never_remembered() -> None:
    users = Users({"alice": "pw"})
    check = CachedPasswordCheck(users, ttl=60)
    assert check("alice", "wrong") is None
    assert check("alice", "wrong") is None
    assert users.calls == ["alice", "alice"]


def test_another_password_for_a_remembered_user_is_checked_again() -> None:
    users = Users({"alice": "pw"})
    check = CachedPasswordCheck(users, ttl=60)
    assert check("alice", "pw") is not None
    assert check("alice", "pw2") is None
    assert check("bob", "pw") is None
    assert users.calls == ["alice", "alice", "bob"]


def test_a_changed_password_is_refused_once_the_entry_expires() -> None:
    users, clock = Users({"alice": "old"}), Clock()
    check = CachedPasswordCheck(users, ttl=10, clock=clock)
    assert check("alice", "old") is not None
    users.passwords["alice"] = "new"
    assert check("alice", "old") is not None  # the documented window
    clock.now += 10
    assert check("alice", "old") is None
    assert check("alice", "new") is not None


def test_no_password_is_kept_in_memory() -> None:
    check = CachedPasswordCheck(Users({"alice": "s3cret-password"}), ttl=60)
    check("alice", "s3cret-password")
    assert all(b"s3cret-password" not in key[1] for key in check._entries)


def test_entries_are_bounded_and_forgettable() -> None:
    users = Users({f"u{i}": "pw" for i in range(10)})
    check = CachedPasswordCheck(users, ttl=60, max_entries=3)
    for i in range(10):
        check(f"u{i}", "pw")
    assert len(check._entries) == 3
    check("u9", "pw")
    assert users.calls.count("u9") == 1
    check.forget("u9")
    check("u9", "pw")
    assert users.calls.count("u9") == 2
    check.forget()
    assert not check._entries


@pytest.mark.parametrize(("ttl", "entries"), [(0, 1), (-1, 1), (1, 0)])
def test_bad_limits_are_refused(ttl: float, entries: int) -> None:
    with pytest.raises(ValueError):
        CachedPasswordCheck(Users({}), ttl=ttl, max_entries=entries)


class HeldUsers(Users):
    """A password check whose first call stops, after computing its answer, until released."""

    def __init__(self, passwords: dict[str, str], fail_first: bool = False) -> None:
        super().__init__(passwords)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.fail_first = fail_first

    def __call__(self, name: str, password: str) -> object:
        answer = super().__call__(name, password)
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(30), "the test never released the held check"
            if self.fail_first:
                raise ConnectionError("user database went away")
        return answer


class WatchedCheck(CachedPasswordCheck):
    """Sets ``waiting`` when a caller starts waiting for a check under way."""

    def __init__(self, verify: Callable[[str, str], object], **kw: Any) -> None:
        super().__init__(verify, **kw)
        self.waiting = threading.Event()

    def _wait(self, flight: _Flight) -> None:
        self.waiting.set()
        super()._wait(flight)


@pytest.fixture
def pool() -> Any:
    with ThreadPoolExecutor(max_workers=3) as executor:
        yield executor


def test_a_check_under_way_during_forget_remembers_nothing(pool: ThreadPoolExecutor) -> None:
    """The htpasswd reload race: alice is removed while her check is being hashed."""
    users = HeldUsers({"alice": "pw"})
    check = CachedPasswordCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", "pw")
    assert users.entered.wait(30)  # the check has read alice's entry and holds
    del users.passwords["alice"]
    check.forget()
    users.release.set()
    assert first.result(30) == {"name": "alice"}  # its own caller came before the removal
    assert check("alice", "pw") is None  # but it was not remembered
    assert users.calls == ["alice", "alice"]


def test_forget_of_another_user_also_discards_checks_under_way(pool: ThreadPoolExecutor) -> None:
    users = HeldUsers({"alice": "pw"})
    check = CachedPasswordCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", "pw")
    assert users.entered.wait(30)
    check.forget("bob")
    users.release.set()
    assert first.result(30) == {"name": "alice"}
    assert check.cached("alice", "pw") is None


def test_a_check_that_starts_after_forget_is_remembered() -> None:
    users = Users({"alice": "pw"})
    check = CachedPasswordCheck(users, ttl=60)
    check.forget()
    assert check("alice", "pw") == {"name": "alice"}
    assert check("alice", "pw") == {"name": "alice"}
    assert users.calls == ["alice"]


@pytest.mark.parametrize("password,expected", [("pw", {"name": "alice"}), ("wrong", None)])
def test_concurrent_checks_of_one_pair_share_one_call(pool: ThreadPoolExecutor, password: str,
                                                      expected: object) -> None:
    """A wrong password is not remembered, so one call for two callers proves they shared it."""
    users = HeldUsers({"alice": "pw"})
    check = WatchedCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", password)
    assert users.entered.wait(30)
    second: Future[object] = pool.submit(check, "alice", password)
    assert check.waiting.wait(30)  # the second caller waits for the first check
    users.release.set()
    assert first.result(30) == expected and second.result(30) == expected
    assert users.calls == ["alice"]


def test_checks_of_other_pairs_do_not_wait(pool: ThreadPoolExecutor) -> None:
    users = HeldUsers({"alice": "pw", "bob": "pw"})
    check = WatchedCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", "pw")
    assert users.entered.wait(30)
    # In this thread, while alice's check holds: other passwords and users go straight through.
    assert check("alice", "other") is None
    assert check("bob", "pw") == {"name": "bob"}
    assert not check.waiting.is_set()
    users.release.set()
    assert first.result(30) == {"name": "alice"}
    assert users.calls == ["alice", "alice", "bob"]


def test_a_caller_after_forget_does_not_join_the_older_check(pool: ThreadPoolExecutor) -> None:
    users = HeldUsers({"alice": "pw"})
    check = WatchedCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", "pw")
    assert users.entered.wait(30)
    del users.passwords["alice"]
    check.forget("alice")
    assert check("alice", "pw") is None  # checked anew, in this thread, without waiting
    assert not check.waiting.is_set()
    users.release.set()
    assert first.result(30) == {"name": "alice"}
    assert check("alice", "pw") is None


def test_a_check_that_raises_is_not_shared(pool: ThreadPoolExecutor) -> None:
    """The waiting caller checks for itself instead of getting the first caller's error."""
    users = HeldUsers({"alice": "pw"}, fail_first=True)
    check = WatchedCheck(users, ttl=60)
    first: Future[object] = pool.submit(check, "alice", "pw")
    assert users.entered.wait(30)
    second: Future[object] = pool.submit(check, "alice", "pw")
    assert check.waiting.wait(30)
    users.release.set()
    with pytest.raises(ConnectionError):
        first.result(30)
    assert second.result(30) == {"name": "alice"}
    assert users.calls == ["alice", "alice"]
    assert not check._flights


def test_cached_never_calls_verify() -> None:
    users, clock = Users({"alice": "pw"}), Clock()
    check = CachedPasswordCheck(users, ttl=10, clock=clock)
    assert check.cached("alice", "pw") is None
    assert users.calls == []
    identity = check("alice", "pw")
    assert check.cached("alice", "pw") is identity
    assert check.cached("alice", "other") is None
    clock.now += 10
    assert check.cached("alice", "pw") is None
    assert users.calls == ["alice"]
