"""Resumable SHA-256 and SHA-512 hashers: OpenSSL's through ctypes, or ``rehashes``.

An upload's PATCHes and its closing PUT may reach different processes, so the running hash
must be saved with the bytes it describes and continued elsewhere; ``hashlib`` cannot export
its state. Two backends can:

* **OpenSSL** (``libcrypto``'s ``SHA256_Init/Update/Final``, called through ctypes): the hash
  state is the plain ``SHA256_CTX`` struct, saved as its bytes; the same assembly as
  ``hashlib`` (SHA-NI where the CPU has it), and ctypes releases the GIL for each call, so a
  request can hash on one thread while another receives and writes. Used when ``libcrypto``
  is found and passes a known-answer test (a hash saved and restored mid-way must equal
  ``hashlib``'s).
* **rehashes** (PyPI; Rust), which holds the GIL while it hashes: the fallback.

A saved state starts with a tag naming its backend, so a process continues any state it can
read (``restore`` raises :class:`UnknownHashState` for one it cannot).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
from typing import Callable, Protocol

from rehashes import PySha256, PySha512

__all__ = ["Hasher", "UnknownHashState", "new", "restore", "BACKEND"]

_OPENSSL_TAG = b"openssl1:"


class Hasher(Protocol):
    """A running hash whose state can be saved and restored."""

    def update(self, data: bytes, /) -> None: ...

    def serialize(self) -> bytes: ...

    def finalize(self) -> str: ...


class UnknownHashState(ValueError):
    """A saved hash state this process cannot continue (another backend's, or damaged)."""


class _OpenSSLKind:
    """One algorithm of libcrypto's low-level SHA API: its functions and sizes."""

    def __init__(self, lib: ctypes.CDLL, name: str, context_size: int, digest_size: int) -> None:
        self.context_size, self.digest_size = context_size, digest_size
        self.init = getattr(lib, f"{name}_Init")
        self.update = getattr(lib, f"{name}_Update")
        self.final = getattr(lib, f"{name}_Final")
        self.init.argtypes = [ctypes.c_void_p]
        self.update.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
        self.final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        for function in (self.init, self.update, self.final):
            function.restype = ctypes.c_int


class OpenSSLHasher:
    """A SHA-2 hash over libcrypto; each ``update`` runs without the GIL."""

    __slots__ = ("_kind", "_context")

    def __init__(self, kind: _OpenSSLKind, state: bytes | None = None) -> None:
        self._kind = kind
        self._context = ctypes.create_string_buffer(kind.context_size)
        if state is None:
            kind.init(self._context)
        else:
            ctypes.memmove(self._context, state, kind.context_size)

    def update(self, data: bytes, /) -> None:
        if not isinstance(data, bytes):
            data = bytes(data)
        self._kind.update(self._context, data, len(data))

    def serialize(self) -> bytes:
        return _OPENSSL_TAG + self._context.raw

    def finalize(self) -> str:
        out = ctypes.create_string_buffer(self._kind.digest_size)
        scratch = ctypes.create_string_buffer(self._context.raw, self._kind.context_size)
        self._kind.final(out, scratch)
        return out.raw.hex()


class RehashesHasher:
    """A SHA-2 hash over ``rehashes``, which ships no types: this class is its typed face."""

    __slots__ = ("_hash",)

    def __init__(self, algorithm: str, state: bytes | None = None) -> None:
        kind = _REHASHES[algorithm]
        self._hash = kind() if state is None else kind.deserialize(state)

    def update(self, data: bytes, /) -> None:
        self._hash.update(data)

    def serialize(self) -> bytes:
        return bytes(self._hash.serialize())

    def finalize(self) -> str:
        return str(self._hash.finalize())


def _openssl() -> dict[str, _OpenSSLKind]:
    """libcrypto's SHA-256 and SHA-512, if found and right; else nothing."""
    name = ctypes.util.find_library("crypto")
    if name is None:
        return {}
    try:
        lib = ctypes.CDLL(name)
        kinds = {
            "sha256": _OpenSSLKind(lib, "SHA256", 112, 32),
            "sha512": _OpenSSLKind(lib, "SHA512", 216, 64),
        }
    except (OSError, AttributeError):
        return {}
    data = bytes(range(256)) * 41  # not a multiple of either block size
    for algorithm, kind in kinds.items():
        first = OpenSSLHasher(kind)
        first.update(data[:1000])
        second = OpenSSLHasher(kind, first.serialize()[len(_OPENSSL_TAG):])
        second.update(data[1000:])
        if second.finalize() != hashlib.new(algorithm, data).hexdigest():
            return {}
    return kinds


_KINDS = _openssl()
_REHASHES = {"sha256": PySha256, "sha512": PySha512}
#: Which backend new hashers use: "openssl" or "rehashes".
BACKEND = "openssl" if _KINDS else "rehashes"


def new(algorithm: str) -> Hasher:
    """A fresh hasher for ``algorithm`` (``sha256`` or ``sha512``) on the best backend here."""
    kind = _KINDS.get(algorithm)
    if kind is not None:
        return OpenSSLHasher(kind)
    return RehashesHasher(algorithm)


def restore(algorithm: str, state: bytes) -> Hasher:
    """A hasher continuing from ``state`` (from :meth:`Hasher.serialize`)."""
    if state.startswith(_OPENSSL_TAG):
        kind = _KINDS.get(algorithm)
        raw = state[len(_OPENSSL_TAG):]
        if kind is None or len(raw) != kind.context_size:
            raise UnknownHashState(f"an OpenSSL {algorithm} state, which this process cannot continue")
        return OpenSSLHasher(kind, raw)
    try:
        return RehashesHasher(algorithm, state)
    except Exception as exc:  # rehashes raises its own error types for foreign bytes
        raise UnknownHashState(f"a {algorithm} state this process cannot read: {exc}") from None


#: For tests: build a hasher of a given backend regardless of the default.
BACKENDS: dict[str, Callable[[str], Hasher]] = {"rehashes": RehashesHasher}
if _KINDS:
    BACKENDS["openssl"] = lambda a: OpenSSLHasher(_KINDS[a])
