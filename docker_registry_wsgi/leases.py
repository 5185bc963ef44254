"""A lease in the storage: which one of several registry processes does a periodic job.

Several processes (and hosts) over one storage may each run a background job that one of them
should do at a time: delivering webhooks, collecting garbage. They share a lease, one small
object holding its owner and when it expires, taken and renewed with the storage's
compare-and-swap (:meth:`~.storage.Storage.swap`), so no lock service is needed. A holder that
dies loses the lease when it expires; one that stalls past the expiry may find another holder:
jobs under a lease must be safe (if wasteful) when two run at once.
"""

from __future__ import annotations

import json
import secrets
import threading

from .storage.base import KeyNotFound, Storage, VersionConflict

__all__ = ["Lease"]


class Lease:
    """``{"owner", "expires"}`` under one key, taken and renewed with the storage's ``swap``."""

    def __init__(self, storage: Storage, key: str, owner: str, ttl: float) -> None:
        self.storage, self.key, self.owner, self.ttl = storage, key, owner, ttl
        self.expires = 0.0
        self._lock = threading.Lock()

    def hold(self, now: float) -> bool:
        """Whether ``owner`` holds the lease now, taking it if free and renewing it once a third has passed."""
        with self._lock:
            if self.expires - now > self.ttl * 2 / 3:
                return True
            try:
                data, version = self.storage.read_versioned(self.key)
            except KeyNotFound:
                data, version = None, None
            if data is not None:
                try:
                    doc = json.loads(data)
                    owner, expires = str(doc["owner"]), float(doc["expires"])
                except (ValueError, KeyError, TypeError):
                    owner, expires = "", 0.0  # unreadable: taken over like an expired one
                if owner != self.owner and expires > now:
                    self.expires = 0.0
                    return False
            try:
                self.storage.swap(self.key, self._doc(now + self.ttl), version)
            except VersionConflict:
                self.expires = 0.0
                return False
            self.expires = now + self.ttl
            return True

    def release(self, now: float) -> None:
        """Give the lease up (if held), so that another process takes it without waiting."""
        with self._lock:
            if self.expires <= now:
                return
            self.expires = 0.0
            try:
                data, version = self.storage.read_versioned(self.key)
                if json.loads(data).get("owner") == self.owner:
                    self.storage.swap(self.key, self._doc(0.0), version)
            except (KeyNotFound, VersionConflict, ValueError, AttributeError):
                pass

    def _doc(self, expires: float) -> bytes:
        return json.dumps({"owner": self.owner, "expires": expires, "nonce": secrets.token_hex(6)}).encode()
