"""Command-line glue: the standalone server's auth options and the auth hook they build.

``add_arguments(parser)`` adds ``--auth`` and friends (each defaulting to a ``REGISTRY_*``
environment variable); ``build(namespace)`` turns the parsed options into the auth hook for
:class:`~docker_registry_wsgi.app.Registry` and the extra WSGI apps to mount beside ``/v2``
(the token issuer at ``--token-path``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Mapping

from ..middleware import WSGIApp
from .base import AccessPolicy, AllowAll, Auth, ReadOnly
from .throttle import ADDRESS_LIMIT, LIMIT, WINDOW, FailureThrottle

__all__ = ["add_arguments", "build", "AUTH_SCHEMES", "ConfigError"]

AUTH_SCHEMES = ("none", "read-only", "htpasswd", "token")



class ConfigError(ValueError):
    """The auth options do not make a working set-up; the message says what to add."""


def _env(environ: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = environ.get(name)
    return value if value not in (None, "") else default


def add_arguments(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Add the auth options to ``parser``; defaults come from ``REGISTRY_*`` variables."""
    env = os.environ if environ is None else environ
    group = parser.add_argument_group(
        "authentication", "who may pull, push and delete (see docs/auth-*.rst)"
    )
    group.add_argument(
        "--auth",
        choices=AUTH_SCHEMES,
        default=_env(env, "REGISTRY_AUTH", "none"),
        help="auth scheme: none (anyone may do anything), read-only, htpasswd (HTTP Basic), "
        "token (Docker token auth) [env REGISTRY_AUTH, default none]",
    )
    group.add_argument(
        "--htpasswd",
        metavar="PATH",
        default=_env(env, "REGISTRY_HTPASSWD"),
        help="Apache htpasswd file (bcrypt, {SHA} or apr1); for --auth htpasswd, and the "
        "users of the built-in token issuer [env REGISTRY_HTPASSWD]",
    )
    group.add_argument(
        "--access-rules",
        metavar="FILE",
        default=_env(env, "REGISTRY_ACCESS_RULES"),
        help="access rules (JSON, TOML or INI); default: any authenticated user may do "
        "everything [env REGISTRY_ACCESS_RULES]",
    )
    group.add_argument(
        "--token-realm",
        metavar="URL",
        default=_env(env, "REGISTRY_TOKEN_REALM"),
        help="URL of the token endpoint sent in the Bearer challenge; a path (/token) is "
        "resolved against the request's host [env REGISTRY_TOKEN_REALM, default "
        "--token-path when the built-in issuer runs]",
    )
    group.add_argument(
        "--token-service",
        metavar="NAME",
        default=_env(env, "REGISTRY_TOKEN_SERVICE", "docker-registry-wsgi"),
        help="service name: the tokens' audience [env REGISTRY_TOKEN_SERVICE]",
    )
    group.add_argument(
        "--token-issuer",
        metavar="NAME",
        default=_env(env, "REGISTRY_TOKEN_ISSUER", "docker-registry-wsgi"),
        help="expected (and, for the built-in issuer, written) iss claim "
        "[env REGISTRY_TOKEN_ISSUER]",
    )
    group.add_argument(
        "--token-public-key",
        metavar="FILE",
        action="append",
        default=None,
        help="PEM public key/certificate or JWKS file that tokens are verified with; "
        "repeatable [env REGISTRY_TOKEN_PUBLIC_KEY, several separated by the path separator; "
        "default: the public half of --token-signing-key]",
    )
    group.add_argument(
        "--token-signing-key",
        metavar="FILE",
        default=_env(env, "REGISTRY_TOKEN_SIGNING_KEY"),
        help="PEM private key (RSA, EC P-256 or Ed25519); runs the built-in token issuer "
        "[env REGISTRY_TOKEN_SIGNING_KEY]",
    )
    group.add_argument(
        "--token-path",
        metavar="PATH",
        default=_env(env, "REGISTRY_TOKEN_PATH", "/token"),
        help="where the built-in token issuer is mounted [env REGISTRY_TOKEN_PATH]",
    )
    group.add_argument(
        "--token-expiry",
        metavar="SECONDS",
        type=int,
        default=int(_env(env, "REGISTRY_TOKEN_EXPIRY", "300") or 300),
        help="lifetime of issued tokens [env REGISTRY_TOKEN_EXPIRY, default 300]",
    )
    group.add_argument(
        "--auth-failure-limit",
        metavar="N",
        type=int,
        default=int(_env(env, "REGISTRY_AUTH_FAILURE_LIMIT", str(LIMIT)) or LIMIT),
        help="failed logins of one user name within --auth-failure-window after which its "
        "password checks are refused with 429 (htpasswd and the built-in issuer); 0 turns "
        f"it off [env REGISTRY_AUTH_FAILURE_LIMIT, default {LIMIT}]",
    )
    group.add_argument(
        "--auth-failure-address-limit",
        metavar="N",
        type=int,
        default=int(_env(env, "REGISTRY_AUTH_FAILURE_ADDRESS_LIMIT", str(ADDRESS_LIMIT))
                    or ADDRESS_LIMIT),
        help="the same per client address; 0 turns it off (do so behind a proxy that hides "
        f"the clients' addresses) [env REGISTRY_AUTH_FAILURE_ADDRESS_LIMIT, default {ADDRESS_LIMIT}]",
    )
    group.add_argument(
        "--auth-failure-window",
        metavar="SECONDS",
        type=float,
        default=float(_env(env, "REGISTRY_AUTH_FAILURE_WINDOW", str(WINDOW)) or WINDOW),
        help=f"how long a failed login counts [env REGISTRY_AUTH_FAILURE_WINDOW, default {WINDOW:.0f}]",
    )
    env_keys = _env(env, "REGISTRY_TOKEN_PUBLIC_KEY")
    parser.set_defaults(
        _token_public_key_env=env_keys.split(os.pathsep) if env_keys else []
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
    if scheme == "none":
        if getattr(namespace, "access_rules", None):
            raise ConfigError("--access-rules needs --auth htpasswd or --auth token")
        return AllowAll(), {}
    if scheme == "read-only":
        return ReadOnly(), {}
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
    key_paths = list(getattr(namespace, "token_public_key", None) or []) or list(
        getattr(namespace, "_token_public_key_env", None) or []
    )
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
