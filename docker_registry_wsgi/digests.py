"""Digests: parsing, and hashers whose state can be saved between requests.

The one place that knows the digest grammar of the OCI image spec ("Digests") and the algorithms
the registry verifies (``sha256``, ``sha512``). Hash state is serialized with ``rehashes``, which
hashes at hashlib speed and can resume in another process, so an upload's bytes are read once.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
from dataclasses import dataclass
from typing import Protocol

from rehashes import PySha256, PySha512

from .errors import DigestInvalid, Unsupported

__all__ = [
    "Digest",
    "Hasher",
    "BackgroundHasher",
    "parse_digest",
    "new_hasher",
    "restore_hasher",
    "digest_bytes",
]

#: digest ::= algorithm ":" encoded (OCI image spec, descriptor.md "Digests").
_GRAMMAR = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+")
_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[a-f0-9]+")
_HASHERS = {"sha256": PySha256, "sha512": PySha512}


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
    if algorithm not in _HASHERS:
        raise Unsupported({"algorithm": algorithm, "supported": sorted(_HASHERS)},
                          message="unsupported digest algorithm")
    return algorithm


class Hasher(Protocol):
    """A running hash whose state can be saved and restored."""

    def update(self, data: bytes, /) -> None: ...

    def serialize(self) -> bytes: ...

    def finalize(self) -> str: ...


def new_hasher(algorithm: str) -> Hasher:
    """A fresh resumable hasher for ``algorithm``."""
    return _HASHERS[check_algorithm(algorithm)]()


def restore_hasher(algorithm: str, state: bytes) -> Hasher:
    """A hasher continuing from ``state`` (from :meth:`Hasher.serialize`)."""
    return _HASHERS[check_algorithm(algorithm)].deserialize(state)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> Digest:
    """The digest of a small in-memory object (a manifest)."""
    return Digest(algorithm, hashlib.new(check_algorithm(algorithm), data).hexdigest())


class BackgroundHasher:
    """Feeds a hasher from a second thread, so hashing overlaps receiving and writing the bytes.

    The socket reads and file writes of an upload release the GIL while they copy; with the hash
    on another thread, a large body costs closer to the longer of the two than to their sum. The
    queue is bounded (``depth`` chunks in flight), so memory stays bounded. Call :meth:`join`
    before reading the hasher's state.
    """

    def __init__(self, hasher: Hasher, depth: int = 4) -> None:
        self.hasher = hasher
        self._chunks: queue.Queue[bytes | None] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="upload-hasher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        update = self.hasher.update
        while (chunk := self._chunks.get()) is not None:
            if self._error is None:
                try:
                    update(chunk)
                except BaseException as exc:  # reported by join(), in the request's thread
                    self._error = exc

    def update(self, chunk: bytes) -> None:
        self._chunks.put(chunk)

    def join(self) -> Hasher:
        """Wait until every chunk is hashed; return the hasher."""
        if self._thread.is_alive():
            self._chunks.put(None)
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self.hasher

