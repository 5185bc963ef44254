"""The site's own user store: a SQLite table of names, password hashes and roles.

Connections live in ``flask.g`` and close with the application context, as in the Flask
tutorial; the registry's password check runs inside an application context too (the
extension pushes one), so it uses the same code.
"""

from __future__ import annotations

import sqlite3

import click
from flask import Flask, current_app, g
from werkzeug.security import check_password_hash, generate_password_hash

from docker_registry_wsgi.auth.base import DELETE, PULL, PUSH, Access

#: What each role may do in the registry; "admin" may also list the catalog.
ROLES: dict[str, frozenset[str]] = {
    "member": frozenset(),
    "reader": frozenset({PULL}),
    "publisher": frozenset({PULL, PUSH}),
    "admin": frozenset({PULL, PUSH, DELETE, "*"}),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS user (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL
)
"""


class User:
    """A row of the user table."""

    def __init__(self, name: str, role: str) -> None:
        self.name = name
        self.role = role

    def __repr__(self) -> str:
        return f"User({self.name!r}, role={self.role!r})"


def get_db() -> sqlite3.Connection:
    """This application context's connection to the users' database."""
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["SITE_DATABASE"], timeout=10)
        g.db.execute(SCHEMA)
    return g.db


def close_db(exc: BaseException | None = None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


def find_user(name: str) -> User | None:
    row = get_db().execute("SELECT name, role FROM user WHERE name = ?", (name,)).fetchone()
    return User(*row) if row else None


def check_password(name: str, password: str) -> User | None:
    """The user with these credentials, or ``None``: the site's login and the registry's."""
    row = get_db().execute("SELECT password_hash FROM user WHERE name = ?", (name,)).fetchone()
    if row is None or not check_password_hash(row[0], password):
        return None
    return find_user(name)


def add_user(name: str, password: str, role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {sorted(ROLES)}")
    db = get_db()
    db.execute(
        "INSERT OR REPLACE INTO user (name, password_hash, role) VALUES (?, ?, ?)",
        (name, generate_password_hash(password), role),
    )
    db.commit()


class RolePolicy:
    """Registry access by the user's role (see :data:`ROLES`); anonymous callers get nothing."""

    def granted(self, identity: object, access: Access) -> frozenset[str]:
        if not isinstance(identity, User):
            return frozenset()
        return access.actions & ROLES.get(identity.role, frozenset())


@click.command("add-user")
@click.argument("name")
@click.option("--role", type=click.Choice(sorted(ROLES)), default="reader", show_default=True)
@click.password_option()
def add_user_command(name: str, role: str, password: str) -> None:
    """Create or update a site user."""
    add_user(name, password, role)
    click.echo(f"user {name} ({role}) saved")


def init_app(app: Flask) -> None:
    app.teardown_appcontext(close_db)
    app.cli.add_command(add_user_command)
