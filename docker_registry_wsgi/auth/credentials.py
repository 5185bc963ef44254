"""Remember recently verified passwords, because registry clients send them with every request.

A push is dozens of requests, each with ``Authorization: Basic``, and a site's password hashes
are slow on purpose (Django's PBKDF2 takes about 2 s per check on a small machine, werkzeug's
scrypt 0.6 s). :class:`CachedPasswordCheck` wraps a site's ``verify(username, password)`` and
answers a repeated, recently successful pair from memory for ``ttl`` seconds.

What is kept: ``(username, HMAC(process-local random key, password)) -> (identity, expiry)``,
never a password. Failures are not kept, so guessing stays as slow as the site's hash. A
password change or a deactivation takes effect for cached pairs when their entry expires.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from typing import Callable

__all__ = ["CachedPasswordCheck"]

PasswordCheck = Callable[[str, str], object]


class CachedPasswordCheck:
    """``verify`` with successful results remembered for ``ttl`` seconds (at most ``max_entries``)."""

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
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> object:
        key = (username, hmac.new(self._key, password.encode("utf-8", "surrogatepass"), hashlib.sha256).digest())
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                if entry[1] > now:
                    return entry[0]
                del self._entries[key]
        identity = self.verify(username, password)
        if identity is not None:
            with self._lock:
                self._entries[key] = (identity, now + self.ttl)
                self._entries.move_to_end(key)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
        return identity

    def forget(self, username: str | None = None) -> None:
        """Drop the remembered passwords of ``username`` (of everyone if ``None``)."""
        with self._lock:
            for key in [k for k in self._entries if username is None or k[0] == username]:
                del self._entries[key]
