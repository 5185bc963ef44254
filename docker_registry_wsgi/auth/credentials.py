"""Remember recently verified passwords, because registry clients send them with every request.

A push is dozens of requests, each with ``Authorization: Basic``, and a site's password hashes
are slow on purpose (Django's PBKDF2 takes about 2 s per check on a small machine, werkzeug's
scrypt 0.6 s). :class:`CachedPasswordCheck` wraps a site's ``verify(username, password)`` and
answers a repeated, recently successful pair from memory for ``ttl`` seconds; concurrent
checks of one pair share one call.

What is kept: ``(username, HMAC(process-local random key, password)) -> (identity, expiry)``,
never a password. Failures are not kept, so guessing stays as slow as the site's hash. A
password change or a deactivation takes effect for cached pairs when their entry expires, or at
once after :meth:`CachedPasswordCheck.forget` (which a check already under way cannot undo).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable

__all__ = ["CachedPasswordCheck", "PasswordCheck"]

#: ``verify(username, password)`` returns an identity, or ``None`` when the pair is wrong.
PasswordCheck = Callable[[str, str], object]


class _Flight:
    """One password check under way; later callers with the same key wait for its result."""

    __slots__ = ("generation", "done", "identity", "failed")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.done = threading.Event()
        self.identity: object = None
        self.failed = True  # until verify returns


class CachedPasswordCheck:
    """``verify`` with successful results remembered for ``ttl`` seconds (at most ``max_entries``).

    Concurrent checks of one user and password share a single call of ``verify`` (the parallel
    first requests of a push pay the slow hash once). :meth:`forget` wins over checks under way:
    a check that started before it does not remember its result.
    """

    def __init__(
        self,
        verify: PasswordCheck,
        ttl: float = 60.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0 or max_entries <= 0:
            raise ValueError("ttl and max_entries must be positive")
        self.verify = verify
        self.ttl = ttl
        self.max_entries = max_entries
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[tuple[str, bytes], tuple[object, float]] = OrderedDict()
        self._flights: dict[tuple[str, bytes], _Flight] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def _cache_key(self, username: str, password: str) -> tuple[str, bytes]:
        secret = password.encode("utf-8", "surrogatepass")
        return (username, hmac.new(self._key, secret, hashlib.sha256).digest())

    def _lookup(self, key: tuple[str, bytes], now: float) -> object:
        """The remembered identity of ``key``, or ``None``; call with the lock held."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] > now:
            return entry[0]
        del self._entries[key]
        return None

    def cached(self, username: str, password: str) -> object:
        """The remembered identity for this pair, or ``None``: never calls ``verify``."""
        key = self._cache_key(username, password)
        now = self._clock()
        with self._lock:
            return self._lookup(key, now)

    def __call__(self, username: str, password: str) -> object:
        key = self._cache_key(username, password)
        while True:
            now = self._clock()
            with self._lock:
                identity = self._lookup(key, now)
                if identity is not None:
                    return identity
                flight = self._flights.get(key)
                leader = flight is None
                if flight is None:
                    flight = self._flights[key] = _Flight(self._generation)
            if leader:
                return self._check(key, flight, username, password, now)
            self._wait(flight)
            if not flight.failed:
                return flight.identity
            # The first check raised; this caller tries for itself rather than share an error.

    def _wait(self, flight: _Flight) -> None:
        """Wait for the check under way (a separate method so that tests can see a caller here)."""
        flight.done.wait()

    def _check(self, key: tuple[str, bytes], flight: _Flight, username: str, password: str,
               now: float) -> object:
        try:
            flight.identity = self.verify(username, password)
            flight.failed = False
        finally:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
                remember = flight.identity is not None and flight.generation == self._generation
                if remember and not flight.failed:
                    self._entries[key] = (flight.identity, now + self.ttl)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self.max_entries:
                        self._entries.popitem(last=False)
            flight.done.set()
        return flight.identity

    def forget(self, username: str | None = None) -> None:
        """Drop the remembered passwords of ``username`` (of everyone if ``None``).

        Checks under way keep their answer for their own callers but remember nothing, and
        later callers do not join them.
        """
        with self._lock:
            self._generation += 1
            for key in [k for k in self._entries if username is None or k[0] == username]:
                del self._entries[key]
            for key in [k for k in self._flights if username is None or k[0] == username]:
                del self._flights[key]
