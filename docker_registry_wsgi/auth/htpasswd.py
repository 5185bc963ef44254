"""HTTP Basic against an Apache htpasswd file, reloaded when the file changes.

Hash forms read: bcrypt (``htpasswd -B``, ``$2y$``/``$2a$``/``$2b$``, checked by the ``bcrypt``
package), apr1-MD5 (``htpasswd -m``, the default of Apache's tool, and ``$1$`` MD5-crypt) and
SHA-1 (``htpasswd -s``, ``{SHA}``). Other forms (crypt DES, SHA-256/512-crypt, plain text) are
refused, and the log says which form a user's line has and how to fix it: the Go registry
accepts bcrypt only and fails silently, which is the trap this module is written to avoid.

Unknown users (and users whose line cannot be used) are checked against a decoy hash of the
file's usual form and cost, made once per load, so that the time of an answer does not tell
which user names exist.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from ..extras import require
from .base import AccessPolicy
from .basic import BasicAuth
from .credentials import CachedPasswordCheck
from .throttle import FailureThrottle

bcrypt = require("bcrypt", "auth", "htpasswd authentication")

__all__ = ["HtpasswdAuth", "HtpasswdFile", "hash_form", "hash_cost"]

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: Successful checks remembered, so that a client sending Basic on every request does not pay
#: a bcrypt round each time; keyed by an HMAC under a per-instance random key.
CACHE_SIZE = 256
#: How long a successful check is remembered; a change of the file forgets at once.
CACHE_SECONDS = 300.0
#: The decoy of a file without usable lines: what ``htpasswd -B`` writes by default.
DEFAULT_DECOY = ("bcrypt", 5)
_BCRYPT = re.compile(r"\$2[aby]\$([0-9]{2})\$[./A-Za-z0-9]{53}")
#: For choosing between equally common hash settings: the more expensive one wins.
_FORM_RANK = {"sha1": 0, "md5-crypt": 1, "apr1": 1, "bcrypt": 2}


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


def hash_cost(hashed: str) -> tuple[str, int] | None:
    """``(form, cost)`` of an entry that can be checked; ``None`` for one that cannot.

    The cost is bcrypt's (log2 of its rounds, ``htpasswd -C``); apr1, ``$1$`` and ``{SHA}``
    have a fixed cost, given as 0. ``$2x$`` and malformed bcrypt lines cannot be checked.
    """
    form = hash_form(hashed)
    if form == "bcrypt":
        match = _BCRYPT.fullmatch(hashed)
        if match is None or not 4 <= int(match.group(1)) <= 31:
            return None
        return (form, int(match.group(1)))
    return (form, 0) if form in SUPPORTED_FORMS else None


def _make_decoy(form: str, cost: int) -> str:
    """A hash of a random password in ``form`` at ``cost``; nobody's password matches it."""
    secret = secrets.token_urlsafe(24)
    if form == "bcrypt":
        return str(bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=cost)).decode())
    if form == "sha1":
        return "{SHA}" + base64.b64encode(hashlib.sha1(secret.encode()).digest()).decode()
    require("passlib.hash", "auth", "apr1 and $1$ password hashes")
    from passlib.hash import apr_md5_crypt, md5_crypt

    return str((apr_md5_crypt if form == "apr1" else md5_crypt).hash(secret))


def _decoy_setting(entries: dict[str, str]) -> tuple[tuple[str, int], Counter[tuple[str, int]]]:
    """The most common ``(form, cost)`` of the usable entries (ties: the most expensive)."""
    settings = Counter(c for c in map(hash_cost, entries.values()) if c is not None)
    if not settings:
        return DEFAULT_DECOY, settings
    chosen = max(settings, key=lambda c: (settings[c], _FORM_RANK[c[0]], c[1]))
    return chosen, settings


def _describe(setting: tuple[str, int]) -> str:
    return f"bcrypt cost {setting[1]}" if setting[0] == "bcrypt" else setting[0]


def _check(form: str, password: str, hashed: str) -> bool:
    secret = password.encode("utf-8")
    if form == "bcrypt":
        stored = hashed.encode("ascii")
        if stored.startswith(b"$2x$"):  # htpasswd never writes it; bcrypt reads it as $2a$
            return False
        try:
            return bool(bcrypt.checkpw(secret[:72], stored))
        except ValueError:
            return False
    if form == "sha1":
        computed = "{SHA}" + base64.b64encode(hashlib.sha1(secret).digest()).decode()
        return hmac.compare_digest(computed.encode(), hashed.encode())
    if form in ("apr1", "md5-crypt"):
        # libpass (the maintained passlib fork) implements Apache's apr1 and glibc's $1$.
        require("passlib.hash", "auth", "apr1 and $1$ password hashes")
        from passlib.hash import apr_md5_crypt, md5_crypt

        scheme = apr_md5_crypt if form == "apr1" else md5_crypt
        try:
            return bool(scheme.verify(secret, hashed))
        except ValueError:
            return False
    return False


@dataclass(frozen=True)
class _Snapshot:
    """What the file held at one ``(mtime, size, inode)`` signature, and its decoy hash."""

    signature: tuple[int, int, int]
    entries: dict[str, str]
    decoy_setting: tuple[str, int]
    decoy: str


class HtpasswdFile:
    """The users of an htpasswd file; :meth:`verify` is a ``PasswordCheck``.

    The file is stat'ed on each check and re-read when its mtime, size or inode change, so
    ``htpasswd -B users.htpasswd alice`` takes effect without a restart. A file that cannot be
    read keeps the last good contents (and logs why); one that never could means no users.

    A user who is not in the file costs one check of :attr:`decoy_hash`, a hash of the form and
    cost most lines of the file use, so that unknown and known users answer in the same time.
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
        self._snapshot = _Snapshot((-1, -1, -1), {}, DEFAULT_DECOY, _make_decoy(*DEFAULT_DECOY))
        # bcrypt is slow on purpose and clients send the password with every request.
        self._checked = CachedPasswordCheck(self._check_entry, ttl=CACHE_SECONDS,
                                            max_entries=CACHE_SIZE)
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
                self._snapshot = _Snapshot((-2, -2, -2), snapshot.entries,
                                           snapshot.decoy_setting, snapshot.decoy)
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
            setting, settings = _decoy_setting(entries)
            previous = self._snapshot
            decoy = previous.decoy if previous.decoy_setting == setting else _make_decoy(*setting)
            # The snapshot first, then forget(): a check that saw the old users is then older
            # than the forget() and remembers nothing.
            self._snapshot = _Snapshot(signature, entries, setting, decoy)
            self._checked.forget()
            if len(settings) > 1:
                others = sum(n for c, n in settings.items() if c != setting)
                self.log.warning(
                    "%s: %d of %d users have another hash form or cost than %s (%s); response "
                    "times tell those users apart from unknown ones. Re-create them with "
                    "htpasswd -B%s", self.path, others, sum(settings.values()), _describe(setting),
                    ", ".join(f"{_describe(c)}: {n}" for c, n in sorted(settings.items())),
                    f" -C {setting[1]}" if setting[0] == "bcrypt" else "",
                )
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

    def password_hash(self, username: str) -> str | None:
        """The user's hash as the file holds it now; ``None`` if the user is not in the file.

        It changes whenever the password is set again, which is what
        :class:`~docker_registry_wsgi.auth.issuer.TokenIssuer` binds refresh tokens to.
        """
        return self._reload().get(username)

    @property
    def decoy_hash(self) -> str:
        """The hash unknown users are checked against (of the file's usual form and cost)."""
        self._reload()
        return self._snapshot.decoy

    def verify(self, username: str, password: str) -> str | None:
        """``username`` if the password matches the file's entry, else ``None``.

        The file is re-read first if it changed, which also forgets remembered passwords.
        """
        self._reload()
        identity = self._checked(username, password)
        return username if identity is not None else None

    def cached(self, username: str, password: str) -> str | None:
        """``username`` if this pair was verified recently (and the file has not changed since).

        Never hashes: :class:`BasicAuth` lets such callers through while their name is throttled.
        """
        self._reload()
        return username if self._checked.cached(username, password) is not None else None

    def _check_entry(self, username: str, password: str) -> str | None:
        snapshot = self._snapshot
        hashed = snapshot.entries.get(username)
        setting = hash_cost(hashed) if hashed is not None else None
        if hashed is None or setting is None:
            if hashed is not None and hash_form(hashed) not in SUPPORTED_FORMS:
                self.log.warning(
                    "refused login of user %r: its htpasswd entry is a %s hash, which is not "
                    "supported (use bcrypt: htpasswd -B)", username, hash_form(hashed),
                )
            _check(snapshot.decoy_setting[0], password, snapshot.decoy)
            return None
        return username if _check(setting[0], password, hashed) else None


class HtpasswdAuth(BasicAuth):
    """:class:`BasicAuth` whose users are the lines of an htpasswd file.

    Failed logins are throttled by ``throttle`` (default: a :class:`FailureThrottle` of its own
    with the default limits; ``FailureThrottle(limit=0, address_limit=0)`` turns it off).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        policy: AccessPolicy | None = None,
        realm: str = "docker-registry-wsgi",
        throttle: FailureThrottle | None = None,
    ) -> None:
        self.users = HtpasswdFile(path)
        super().__init__(self.users.verify, policy=policy, realm=realm,
                         throttle=throttle if throttle is not None else FailureThrottle(),
                         cached=self.users.cached)
