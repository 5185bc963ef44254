"""CachedPasswordCheck: good passwords remembered for a while, bad ones never."""

from __future__ import annotations

import pytest

from docker_registry_wsgi.auth.credentials import CachedPasswordCheck


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
