"""The resumable hashers: every backend equals hashlib, whatever the split and save points."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings, strategies as st

from docker_registry_wsgi import hashers
from docker_registry_wsgi.hashers import UnknownHashState

BACKENDS = sorted(hashers.BACKENDS)


def test_openssl_is_the_default_where_libcrypto_is() -> None:
    """This machine (and CI's) has libcrypto: hashing must not hold the GIL there."""
    assert hashers.BACKEND == "openssl"
    assert isinstance(hashers.new("sha256"), hashers.OpenSSLHasher)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@settings(max_examples=60, deadline=None)
@given(pieces=st.lists(st.binary(max_size=300), max_size=8), saves=st.sets(st.integers(0, 8)))
def test_any_split_and_any_save_points_give_hashlibs_digest(backend: str, algorithm: str,
                                                            pieces: list[bytes], saves: set[int]) -> None:
    hasher = hashers.BACKENDS[backend](algorithm)
    for i, piece in enumerate(pieces):
        if i in saves:  # saved and continued, as by another process
            hasher = hashers.restore(algorithm, hasher.serialize())
        hasher.update(piece)
    assert hasher.finalize() == hashlib.new(algorithm, b"".join(pieces)).hexdigest()


@pytest.mark.parametrize("backend", BACKENDS)
def test_finalize_leaves_the_hasher_usable(backend: str) -> None:
    hasher = hashers.BACKENDS[backend]("sha256")
    hasher.update(b"abc")
    assert hasher.finalize() == hasher.finalize() == hashlib.sha256(b"abc").hexdigest()
    hasher.update(b"def")
    assert hasher.finalize() == hashlib.sha256(b"abcdef").hexdigest()


def test_updates_take_bytes_likes() -> None:
    hasher = hashers.new("sha256")
    hasher.update(memoryview(b"abc"))  # type: ignore[arg-type]
    hasher.update(bytearray(b"def"))  # type: ignore[arg-type]
    assert hasher.finalize() == hashlib.sha256(b"abcdef").hexdigest()


@pytest.mark.parametrize("state", [b"openssl1:" + b"\0" * 10, b"garbage", b""])
def test_a_state_that_cannot_be_continued_is_refused(state: bytes) -> None:
    with pytest.raises(UnknownHashState):
        hashers.restore("sha256", state)


def test_rehashes_states_from_earlier_sessions_still_continue() -> None:
    """Sessions recorded before OpenSSL hashing carry rehashes states."""
    old = hashers.BACKENDS["rehashes"]("sha256")
    old.update(b"recorded before the upgrade ")
    continued = hashers.restore("sha256", old.serialize())
    continued.update(b"and continued after")
    assert continued.finalize() == hashlib.sha256(b"recorded before the upgrade and continued after").hexdigest()
