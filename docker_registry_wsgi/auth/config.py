"""The standalone server's auth settings and the auth hook they build.

:data:`OPTIONS` declares ``--auth`` and friends (flags, ``REGISTRY_*`` variables and
configuration file keys, read by :mod:`docker_registry_wsgi.options`); ``build(namespace)``
turns the values into the auth hook for :class:`~docker_registry_wsgi.app.Registry` and the
extra WSGI apps to mount beside ``/v2`` (the token issuer at ``--token-path``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ..wsgi import WSGIApp
from ..options import ConfigurationError, Option, choice, file, integer, number, text
from .base import AllowAll, Auth, AccessPolicy
from .throttle import ADDRESS_LIMIT, LIMIT, WINDOW, FailureThrottle

__all__ = ["OPTIONS", "build", "AUTH_SCHEMES", "ConfigError", "check_access_rules"]

#: ``read-only`` is a deprecated alias of ``--auth none --read-only`` (docs/cli.rst).
AUTH_SCHEMES = ("none", "read-only", "htpasswd", "token")


class ConfigError(ConfigurationError):
    """The auth options do not make a working set-up; the message says what to add."""


def check_access_rules(path: str) -> None:
    """Load an access rules file (PolicyError, a ValueError, says what is wrong in it)."""
    from .policy import RulePolicy

    RulePolicy.from_file(path)


_GROUP = "authentication"

OPTIONS = (
    Option("auth", choice(*AUTH_SCHEMES), "auth scheme: none (anyone may do anything), htpasswd "
           "(HTTP Basic), token (Docker token auth); read-only is --auth none --read-only "
           "(deprecated)", default="none", group=_GROUP),
    Option("htpasswd", file(), "Apache htpasswd file (bcrypt, {SHA} or apr1); for --auth htpasswd, "
           "and the users of the built-in token issuer", group=_GROUP),
    Option("access-rules", file(check_access_rules), "access rules (JSON, TOML or INI; "
           "docs/auth-policy.rst); with --auth htpasswd or token", group=_GROUP,
           default_text="any authenticated user may do everything"),
    Option("token-realm", text(metavar="URL"), "URL of the token endpoint sent in the Bearer "
           "challenge; a path (/token) is resolved against the request's host", group=_GROUP,
           default_text="--token-path when the built-in issuer runs"),
    Option("token-service", text(metavar="NAME"), "service name: the tokens' audience",
           default="docker-registry-wsgi", group=_GROUP),
    Option("token-issuer", text(metavar="NAME"), "expected (and, for the built-in issuer, "
           "written) iss claim", default="docker-registry-wsgi", group=_GROUP),
    Option("token-public-key", file(), "PEM public key or certificate, or JWKS file, that tokens "
           "are verified with", repeatable=True, separator=os.pathsep, default=(), group=_GROUP,
           default_text="the public half of --token-signing-key"),
    Option("token-signing-key", file(), "PEM private key (RSA, EC P-256 or Ed25519); runs the "
           "built-in token issuer", group=_GROUP),
    Option("token-path", text(metavar="PATH"), "where the built-in token issuer is mounted",
           default="/token", group=_GROUP),
    Option("token-expiry", integer(1, unit="seconds"), "lifetime of issued tokens", default=300,
           group=_GROUP),
    Option("auth-failure-limit", integer(0), "failed logins of one user name within "
           "--auth-failure-window after which its password checks are refused with 429 (htpasswd "
           "and the built-in issuer); 0 turns it off", default=LIMIT, group=_GROUP),
    Option("auth-failure-address-limit", integer(0), "the same per client address; 0 turns it off "
           "(do so behind a proxy that hides the clients' addresses)", default=ADDRESS_LIMIT,
           group=_GROUP),
    Option("auth-failure-window", number(above=0, unit="seconds"), "how long a failed login counts",
           default=WINDOW, group=_GROUP),
)


def _policy(namespace: argparse.Namespace) -> AccessPolicy | None:
    path = getattr(namespace, "access_rules", None)
    if not path:
        return None
    from .policy import RulePolicy

    return RulePolicy.from_file(path)


def _throttle(namespace: argparse.Namespace) -> FailureThrottle:
    limit = getattr(namespace, "auth_failure_limit", LIMIT)
    address_limit = getattr(namespace, "auth_failure_address_limit", ADDRESS_LIMIT)
    window = getattr(namespace, "auth_failure_window", WINDOW)
    if limit < 0 or address_limit < 0 or window <= 0:
        raise ConfigError("--auth-failure-limit and --auth-failure-address-limit must be 0 (off) "
                          "or more, --auth-failure-window more than 0")
    return FailureThrottle(limit, window, address_limit=address_limit)


def _require(namespace: argparse.Namespace, option: str, why: str) -> str:
    value = getattr(namespace, option.lstrip("-").replace("-", "_"), None)
    if not value:
        raise ConfigError(f"{option} is required {why}")
    return str(value)


def build(namespace: argparse.Namespace) -> tuple[Auth | None, dict[str, WSGIApp]]:
    """The auth hook and the ``{mount path: WSGI app}`` to serve beside ``/v2``.

    Raises :class:`ConfigError` for an incomplete set-up (e.g. ``--auth htpasswd`` without
    ``--htpasswd``) so that the server fails at start, not on the first request.
    """
    try:
        return _build(namespace)
    except ConfigError:
        raise
    except ValueError as exc:  # PolicyError, KeyFileError, ChallengeError: bad files or values
        raise ConfigError(str(exc)) from None


def _build(namespace: argparse.Namespace) -> tuple[Auth | None, dict[str, WSGIApp]]:
    scheme = getattr(namespace, "auth", None) or "none"
    if scheme in ("none", "read-only"):  # read-only: the server also turns on --read-only
        if getattr(namespace, "access_rules", None):
            raise ConfigError(f"--access-rules needs --auth htpasswd or --auth token, not --auth {scheme}")
        return AllowAll(), {}
    if scheme == "htpasswd":
        from .htpasswd import HtpasswdAuth

        path = _require(namespace, "--htpasswd", "for --auth htpasswd")
        if not Path(path).is_file():
            raise ConfigError(f"--htpasswd {path}: no such file")
        return HtpasswdAuth(path, policy=_policy(namespace), throttle=_throttle(namespace)), {}
    if scheme == "token":
        return _build_token(namespace)
    raise ConfigError(f"unknown --auth scheme {scheme!r}; choose one of {', '.join(AUTH_SCHEMES)}")


def _build_token(namespace: argparse.Namespace) -> tuple[Auth, dict[str, WSGIApp]]:
    from .token import TokenAuth, load_private_key, load_public_keys

    service = _require(namespace, "--token-service", "for --auth token")
    issuer_name = _require(namespace, "--token-issuer", "for --auth token")
    signing_path = getattr(namespace, "token_signing_key", None)
    key_paths = list(getattr(namespace, "token_public_key", None) or [])
    apps: dict[str, WSGIApp] = {}
    keys = load_public_keys(key_paths) if key_paths else []
    realm = getattr(namespace, "token_realm", None)
    if signing_path:
        from .htpasswd import HtpasswdFile
        from .issuer import TokenIssuer

        private_key = load_private_key(signing_path)
        if not keys:
            keys = load_public_keys([], private_keys=[private_key])
        htpasswd = _require(
            namespace, "--htpasswd", "for the built-in token issuer (--token-signing-key)"
        )
        if not Path(htpasswd).is_file():
            raise ConfigError(f"--htpasswd {htpasswd}: no such file")
        token_path = "/" + (getattr(namespace, "token_path", None) or "/token").strip("/")
        if token_path == "/" or token_path == "/v2" or token_path.startswith("/v2/"):
            raise ConfigError(f"--token-path {token_path} must be a path of its own, not / or /v2")
        users = HtpasswdFile(htpasswd)
        apps[token_path] = TokenIssuer(
            private_key,
            issuer=issuer_name,
            service=service,
            verify=users.verify,
            credential_stamp=users.password_hash,
            policy=_policy(namespace),
            expires_in=int(getattr(namespace, "token_expiry", 300) or 300),
            throttle=_throttle(namespace),
            cached=users.cached,
        )
        realm = realm or token_path
    elif not keys:
        raise ConfigError(
            "--auth token needs --token-public-key (tokens from another issuer) or "
            "--token-signing-key (the built-in issuer)"
        )
    if not realm:
        raise ConfigError("--token-realm is required when tokens come from another issuer")
    return TokenAuth(realm=realm, service=service, issuer=issuer_name, keys=keys), apps
