"""Digests: parsing, and hashers whose state can be saved between requests.

The one place that knows the digest grammar of the OCI image spec ("Digests") and the algorithms
the registry verifies (``sha256``, ``sha512``). Hashers whose state can be saved and resumed in
another process come from :mod:`.hashers`, so an upload's bytes are read once.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from . import hashers
from .errors import DigestInvalid, Unsupported
from .hashers import Hasher

__all__ = ["Digest", "Hasher", "parse_digest", "new_hasher", "restore_hasher", "digest_bytes"]

#: digest ::= algorithm ":" encoded (OCI image spec, descriptor.md "Digests").
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")
_ALGORITHMS = frozenset({"sha256", "sha512"})


@dataclass(frozen=True, order=True)
class Digest:
    """A validated digest such as ``sha256:e3b0...``."""

    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def parse_digest(text: str) -> Digest:
    """Parse ``text``; :class:`DigestInvalid` if malformed or of an algorithm the registry lacks."""
    if not isinstance(text, str) or len(text) > 256 or not _GRAMMAR.fullmatch(text):
        raise DigestInvalid({"digest": text[:256] if isinstance(text, str) else None},
                            message="invalid digest")
    algorithm, _, encoded = text.partition(":")
    length = _HEX_LENGTH.get(algorithm)
    if length is None:
        raise DigestInvalid({"digest": text, "supported": sorted(_HEX_LENGTH)},
                            message=f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or not _HEX.fullmatch(encoded):
        raise DigestInvalid({"digest": text}, message="invalid digest")
    return Digest(algorithm, encoded)


def check_algorithm(algorithm: str) -> str:
    """Return ``algorithm`` if the registry can compute it, else :class:`Unsupported`."""
    if algorithm not in _ALGORITHMS:
        raise Unsupported({"algorithm": algorithm, "supported": sorted(_ALGORITHMS)},
                          message="unsupported digest algorithm")
    return algorithm


def new_hasher(algorithm: str) -> Hasher:
    """A fresh resumable hasher for ``algorithm``."""
    return hashers.new(check_algorithm(algorithm))


def restore_hasher(algorithm: str, state: bytes) -> Hasher:
    """A hasher continuing from ``state`` (from :meth:`Hasher.serialize`).

    :class:`~.hashers.UnknownHashState` for a state this process cannot continue.
    """
    return hashers.restore(check_algorithm(algorithm), state)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of a small in-memory object (a manifest)."""
    return Digest(algorithm, hashlib.new(check_algorithm(algorithm), data).hexdigest())
