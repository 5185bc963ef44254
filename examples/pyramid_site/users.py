"""The site's own user store: a JSON file of names, salted password hashes and groups.

It is also the registry's auth hook (:func:`make_registry_auth`, named in ``site.ini``), so the
same accounts and groups decide who may sign in to the site and who may push and pull.
Command line: ``python -m pyramid_site --file users.json add NAME --group GROUP``.
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from typing import Any, Mapping

from docker_registry_wsgi.auth.base import DELETE, PULL, PUSH, Access
from docker_registry_wsgi.auth.basic import BasicAuth
from docker_registry_wsgi.auth.credentials import CachedPasswordCheck

#: The registry actions each group grants.
GROUP_ACTIONS: dict[str, frozenset[str]] = {
    "readers": frozenset({PULL}),
    "publishers": frozenset({PULL, PUSH}),
    "maintainers": frozenset({PULL, PUSH, DELETE}),
}

_ITERATIONS = 200_000


@dataclass(frozen=True)
class User:
    name: str
    groups: frozenset[str]


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ITERATIONS)
    return f"pbkdf2_sha256${_ITERATIONS}${salt.hex()}${digest.hex()}"


def _password_matches(password: str, stored: str) -> bool:
    _, iterations, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


class UserStore:
    """The users of ``path``, read on every check so that edits apply without a restart."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def find(self, name: str) -> User | None:
        entry = self._load().get(name)
        return User(name, frozenset(entry["groups"])) if entry else None

    def check_password(self, name: str, password: str) -> User | None:
        """The user with these credentials, or ``None``: the site's login and the registry's."""
        entry = self._load().get(name)
        if entry is None or not _password_matches(password, entry["password"]):
            return None
        return User(name, frozenset(entry["groups"]))

    def add(self, name: str, password: str, groups: list[str]) -> None:
        unknown = set(groups) - set(GROUP_ACTIONS)
        if unknown:
            raise ValueError(f"unknown groups {sorted(unknown)}; known: {sorted(GROUP_ACTIONS)}")
        users = self._load()
        users[name] = {"password": hash_password(password), "groups": sorted(groups)}
        folder = os.path.dirname(os.path.abspath(self.path))
        with tempfile.NamedTemporaryFile("w", dir=folder, delete=False, encoding="utf-8") as f:
            json.dump(users, f, indent=2)
        os.replace(f.name, self.path)


class GroupPolicy:
    """Registry access from the user's groups (see :data:`GROUP_ACTIONS`)."""

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        if not isinstance(identity, User) or access.type != "repository":
            return frozenset()
        allowed = frozenset().union(*(GROUP_ACTIONS.get(g, frozenset()) for g in identity.groups))
        return access.actions & allowed


def make_registry_auth(settings: Mapping[str, Any]) -> BasicAuth:
    """The registry's auth hook (``docker_registry.auth`` in ``site.ini``)."""
    store = UserStore(settings["site.users_file"])
    # Clients send the password with every request; a good one is remembered for a minute.
    return BasicAuth(CachedPasswordCheck(store.check_password, ttl=60), policy=GroupPolicy(), realm="pyramid site")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pyramid_site", description=__doc__)
    parser.add_argument("--file", required=True, help="the users file (site.users_file)")
    commands = parser.add_subparsers(dest="command", required=True)
    add = commands.add_parser("add", help="create or update a user")
    add.add_argument("name")
    add.add_argument("--group", action="append", default=[], choices=sorted(GROUP_ACTIONS))
    add.add_argument("--password", help="default: asked for (or env SITE_PASSWORD)")
    args = parser.parse_args(argv)
    password = args.password or os.environ.get("SITE_PASSWORD") or getpass.getpass()
    UserStore(args.file).add(args.name, password, args.group)
    print(f"user {args.name} saved")


if __name__ == "__main__":
    main()
