"""Slow down password guessing: failed logins counted per user name and per client address.

:class:`FailureThrottle` remembers, per process, the times of the last failed logins of each
user name and each client address. Once a user name has ``limit`` failures (an address
``address_limit``) within ``window`` seconds, further password checks for it are refused with
``429 TOOMANYREQUESTS`` and ``Retry-After`` until the oldest of those failures leaves the window:
no password is hashed for a refused attempt, and nobody stays locked once failures stop.

Memory is bounded: at most ``max_keys`` user names and addresses are tracked (the least recently
failed are forgotten first), user names are kept as a keyed hash, never as sent.
"""

from __future__ import annotations

import hashlib
import logging
import math
import secrets
import threading
import time
from collections import OrderedDict, deque
from typing import Callable

from .credentials import PasswordCheck

__all__ = ["FailureThrottle", "Throttled", "LIMIT", "ADDRESS_LIMIT", "WINDOW"]

#: Failed logins of one user name within :data:`WINDOW` before its checks are refused.
LIMIT = 10
#: Failed logins from one client address within :data:`WINDOW` (several users may share one).
ADDRESS_LIMIT = 30
#: Seconds a failed login counts for.
WINDOW = 60.0
#: User names and addresses tracked at most.
MAX_KEYS = 4096


class Throttled(Exception):
    """Too many failed logins: no password was checked; try again in ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed logins; try again in {retry_after} s")
        self.retry_after = retry_after


class FailureThrottle:
    """Counts failed logins in a sliding window and says how long a caller must wait.

    ``limit`` / ``address_limit`` of 0 turn the per-user / per-address count off. ``clock`` is
    injectable for tests (monotonic seconds).
    """

    def __init__(
        self,
        limit: int = LIMIT,
        window: float = WINDOW,
        *,
        address_limit: int = ADDRESS_LIMIT,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger | None = None,
    ) -> None:
        if limit < 0 or address_limit < 0 or window <= 0 or max_keys <= 0:
            raise ValueError("limits must be >= 0, window and max_keys > 0")
        self.limit = limit
        self.address_limit = address_limit
        self.window = float(window)
        self.max_keys = max_keys
        self._clock = clock
        self._key = secrets.token_bytes(16)
        self._failures: OrderedDict[tuple[str, bytes], deque[float]] = OrderedDict()
        self._lock = threading.Lock()
        self.log = logger or logging.getLogger(__name__)

    def check(
        self,
        verify: PasswordCheck,
        username: str,
        password: str,
        address: str | None,
        cached: PasswordCheck | None = None,
    ) -> object:
        """``verify(username, password)`` unless the name or address is throttled.

        A pair ``cached`` already knows (a user in the middle of a push) passes without being
        counted; otherwise a throttled caller gets :class:`Throttled` and nothing is hashed,
        and a failed check (``None``) is counted.
        """
        if self.enabled:
            identity = cached(username, password) if cached is not None else None
            if identity is not None:
                return identity
            wait = self.retry_after(username, address)
            if wait:
                self.log.info("refused to check the password of %r from %s: throttled for %d s",
                              username, address, wait)
                raise Throttled(wait)
        identity = verify(username, password)
        if identity is None:
            reached = self.failed(username, address)
            if reached:
                self.log.warning("%s within %.0f s: further password checks are refused with "
                                 "429 until older failures expire", reached, self.window)
        return identity

    @property
    def enabled(self) -> bool:
        return bool(self.limit or self.address_limit)

    def _keys(self, username: str, address: str | None) -> list[tuple[tuple[str, bytes], int]]:
        keys = []
        if self.limit:
            name = hashlib.blake2b(username.encode("utf-8", "surrogatepass"), key=self._key,
                                   digest_size=16).digest()
            keys.append((("user", name), self.limit))
        if self.address_limit and address:
            keys.append((("address", address.encode("utf-8", "surrogatepass")), self.address_limit))
        return keys

    def retry_after(self, username: str, address: str | None) -> int:
        """Seconds until ``username`` from ``address`` may try a password again; 0: go ahead."""
        if not self.enabled:
            return 0
        now = self._clock()
        wait = 0.0
        with self._lock:
            for key, limit in self._keys(username, address):
                times = self._recent(key, now)
                if times is not None and len(times) >= limit:
                    wait = max(wait, times[0] + self.window - now)
        return math.ceil(wait) if wait > 0 else 0

    def failed(self, username: str, address: str | None) -> str | None:
        """Count a failed login; says which limit this failure reaches (worth logging), if any."""
        if not self.enabled:
            return None
        now = self._clock()
        reached: list[str] = []
        with self._lock:
            for key, limit in self._keys(username, address):
                times = self._recent(key, now)
                if times is None:
                    times = self._failures[key] = deque(maxlen=limit)
                times.append(now)
                self._failures.move_to_end(key)
                if len(times) == limit:
                    who = f"user {username!r}" if key[0] == "user" else f"address {address}"
                    reached.append(f"{limit} failed logins of {who}")
            while len(self._failures) > self.max_keys:
                self._failures.popitem(last=False)
        return " and ".join(reached) or None

    def _recent(self, key: tuple[str, bytes], now: float) -> deque[float] | None:
        """The failure times of ``key`` still inside the window (older ones dropped)."""
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] + self.window <= now:
            times.popleft()
        if not times:
            del self._failures[key]
            return None
        return times

    @property
    def tracked(self) -> int:
        """How many user names and addresses have failures on record now."""
        with self._lock:
            return len(self._failures)
