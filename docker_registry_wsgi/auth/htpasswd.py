"""HTTP Basic against an Apache htpasswd file, reloaded when the file changes.

Hash forms read: bcrypt (``htpasswd -B``, ``$2y$``/``$2a$``/``$2b$``, checked by the ``bcrypt``
package), apr1-MD5 (``htpasswd -m``, the default of Apache's tool, and ``$1$`` MD5-crypt) and
SHA-1 (``htpasswd -s``, ``{SHA}``). Other forms (crypt DES, SHA-256/512-crypt, plain text) are
refused, and the log says which form a user's line has and how to fix it: the Go registry
accepts bcrypt only and fails silently, which is the trap this module is written to avoid.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
from dataclasses import dataclass
from typing import Callable

import bcrypt

from .base import AccessPolicy
from .basic import BasicAuth
from .credentials import CachedPasswordCheck

__all__ = ["HtpasswdAuth", "HtpasswdFile", "hash_form"]

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Successful checks remembered, so that a client sending Basic on every request does not pay
#: a bcrypt round each time; keyed by an HMAC under a per-instance random key.
CACHE_SIZE = 256
#: How long a successful check is remembered; a change of the file forgets at once.
CACHE_SECONDS = 300.0


def hash_form(hashed: str) -> str:
    """Name the hash form of an htpasswd entry: ``bcrypt``, ``apr1``, ``md5-crypt``, ``sha1``...

    Unsupported forms get a name too (``crypt-des``, ``sha256-crypt``, ``sha512-crypt``,
    ``plain-or-unknown``) so that the log can say what was found.
    """
    if hashed[:4] in ("$2y$", "$2a$", "$2b$", "$2x$"):
        return "bcrypt"
    if hashed.startswith("$apr1$"):
        return "apr1"
    if hashed.startswith("$1$"):
        return "md5-crypt"
    if hashed.startswith("{SHA}"):
        return "sha1"
    if hashed.startswith("$5$"):
        return "sha256-crypt"
    if hashed.startswith("$6$"):
        return "sha512-crypt"
    if len(hashed) == 13 and all(c in _ITOA64 for c in hashed):
        return "crypt-des"
    return "plain-or-unknown"


SUPPORTED_FORMS = frozenset({"bcrypt", "apr1", "md5-crypt", "sha1"})


def _check(form: str, password: str, hashed: str) -> bool:
    secret = password.encode("utf-8")
    if form == "bcrypt":
        stored = hashed.encode("ascii")
        if stored.startswith(b"$2x$"):  # htpasswd never writes it; bcrypt reads it as $2a$
            return False
        try:
            return bcrypt.checkpw(secret[:72], stored)
        except ValueError:
            return False
    if form == "sha1":
        computed = "{SHA}" + base64.b64encode(hashlib.sha1(secret).digest()).decode()
        return hmac.compare_digest(computed.encode(), hashed.encode())
    if form in ("apr1", "md5-crypt"):
        # libpass (the maintained passlib fork) implements Apache's apr1 and glibc's $1$.
        from passlib.hash import apr_md5_crypt, md5_crypt

        scheme = apr_md5_crypt if form == "apr1" else md5_crypt
        try:
            return bool(scheme.verify(secret, hashed))
        except ValueError:
            return False
    return False


@dataclass(frozen=True)
class _Snapshot:
    """What the file held at one ``(mtime, size, inode)`` signature."""

    signature: tuple[int, int, int]
    entries: dict[str, str]


class HtpasswdFile:
    """The users of an htpasswd file; :meth:`verify` is a ``PasswordCheck``.

    The file is stat'ed on each check and re-read when its mtime, size or inode change, so
    ``htpasswd -B users.htpasswd alice`` takes effect without a restart. A file that cannot be
    read keeps the last good contents (and logs why); one that never could means no users.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        logger: logging.Logger | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.log = logger or logging.getLogger(__name__)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot((-1, -1, -1), {})
        # bcrypt is slow on purpose and clients send the password with every request.
        self._checked = CachedPasswordCheck(self._check_entry, ttl=CACHE_SECONDS,
                                            max_entries=CACHE_SIZE)
        # Checked against when the user is unknown, so that the answer takes as long as for a
        # known user with a wrong password and does not reveal which users exist.
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=5))
        self._reload()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _reload(self) -> dict[str, str]:
        signature = self._signature()
        snapshot = self._snapshot
        if signature is None:
            if snapshot.signature != (-2, -2, -2):
                self.log.error("htpasswd file %s cannot be read; keeping %d users", self.path,
                               len(snapshot.entries))
                self._snapshot = _Snapshot((-2, -2, -2), snapshot.entries)
            return snapshot.entries
        if signature == snapshot.signature:
            return snapshot.entries
        with self._lock:
            if self._snapshot.signature == signature:
                return self._snapshot.entries
            try:
                with open(self.path, "rb") as f:
                    data = f.read()
            except OSError as exc:
                self.log.error("htpasswd file %s cannot be read (%s); keeping %d users",
                               self.path, exc, len(self._snapshot.entries))
                return self._snapshot.entries
            entries = self._parse(data)
            self._snapshot = _Snapshot(signature, entries)
            self._checked.forget()
            self.log.info("loaded %d users from htpasswd file %s", len(entries), self.path)
            return entries

    def _parse(self, data: bytes) -> dict[str, str]:
        entries: dict[str, str] = {}
        for number, raw in enumerate(data.splitlines(), 1):
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError:
                self.log.warning("%s line %d is not UTF-8; ignored", self.path, number)
                continue
            if not line or line.startswith("#"):
                continue
            user, colon, hashed = line.partition(":")
            if not colon or not user or not hashed:
                self.log.warning("%s line %d is not user:hash; ignored", self.path, number)
                continue
            form = hash_form(hashed)
            if form not in SUPPORTED_FORMS:
                self.log.warning(
                    "%s line %d: user %r has a %s password hash, which is not supported; "
                    "this user cannot log in. Re-create it with: htpasswd -B %s %s",
                    self.path, number, user, form, self.path, user,
                )
            if user in entries:
                self.log.warning("%s line %d: user %r appears again; the later line wins",
                                 self.path, number, user)
            entries[user] = hashed
        return entries

    def __contains__(self, username: object) -> bool:
        return isinstance(username, str) and username in self._reload()

    def users(self) -> list[str]:
        """The user names in the file now."""
        return list(self._reload())

    def verify(self, username: str, password: str) -> str | None:
        """``username`` if the password matches the file's entry, else ``None``.

        The file is re-read first if it changed, which also forgets remembered passwords.
        """
        self._reload()
        identity = self._checked(username, password)
        return username if identity is not None else None

    def _check_entry(self, username: str, password: str) -> str | None:
        hashed = self._snapshot.entries.get(username)
        if hashed is None:
            bcrypt.checkpw(password.encode("utf-8")[:72], self._decoy)
            return None
        form = hash_form(hashed)
        if form not in SUPPORTED_FORMS:
            self.log.warning(
                "refused login of user %r: its htpasswd entry is a %s hash, which is not "
                "supported (use bcrypt: htpasswd -B)", username, form,
            )
            return None
        return username if _check(form, password, hashed) else None


class HtpasswdAuth(BasicAuth):
    """:class:`BasicAuth` whose users are the lines of an htpasswd file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: AccessPolicy | None = None,
        realm: str = "docker-registry-wsgi",
    ) -> None:
        self.users = HtpasswdFile(path)
        super().__init__(self.users.verify, policy=policy, realm=realm)
