"""Fixtures for the auth tests: keys generated with cryptography, htpasswd files, a fake clock."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import bcrypt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

#: Known answers produced by Apache's ``htpasswd -nbm`` / ``-nbs`` / ``-nbd`` (apache2-utils 2.4).
APR1_SECRET = "$apr1$NqjrywxA$MyXHLvtewkFHZK3TH4yZu."
SHA1_SECRET = "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="
CRYPT_DES_SECRET = "UJir1YqgnTkVY"
SHA512_CRYPT_SECRET = (
    "$6$7UUz/l4GwUt7YUB7$z1DoFktyp1KUEv.td4ZG8Ihmj4tB15CJ8FSqXgm9l9Q0bJeB3x9SAh5w3L5ZiQM7f/9gI6c8PCAiDbLQd9hb20"
)


@dataclass
class FakeClock:
    """A clock the tests move by hand (``TokenAuth(clock=...)``, ``TokenIssuer(clock=...)``)."""

    now: float = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def ed25519_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def private_pem(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_pem(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.fixture
def write_key(tmp_path: Path) -> Callable[..., Path]:
    """``write_key(key, name, private=False)``: the key's PEM in a file under ``tmp_path``."""

    def write(key: Any, name: str, private: bool = False) -> Path:
        path = tmp_path / name
        path.write_bytes(private_pem(key) if private else public_pem(key))
        return path

    return write


def bcrypt_line(user: str, password: str) -> str:
    """An htpasswd line as ``htpasswd -B`` writes it (``$2y$``), at the cheapest cost."""
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:$2y${hashed[4:]}"


@pytest.fixture
def htpasswd_path(tmp_path: Path) -> Path:
    """Users of every hash form; each password is ``secret`` except alice's."""
    path = tmp_path / "users.htpasswd"
    path.write_text(
        "\n".join(
            [
                "# a comment",
                bcrypt_line("alice", "wonderland"),
                bcrypt_line("robot", "beep"),
                f"bob:{APR1_SECRET}",
                f"carol:{SHA1_SECRET}",
                f"dave:{CRYPT_DES_SECRET}",
                f"erin:{SHA512_CRYPT_SECRET}",
                "",
            ]
        )
    )
    return path


def basic(user: str, password: str) -> str:
    """An ``Authorization: Basic`` value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def make_request(authorization: str | bytes | None = None, **kw: Any) -> Request:
    """A werkzeug request; a ``bytes`` header reaches the app as WSGI's latin-1 ``str``."""
    builder = EnvironBuilder(**kw)
    environ = builder.get_environ()
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = (
            authorization.decode("latin-1") if isinstance(authorization, bytes) else authorization
        )
    return Request(environ)
