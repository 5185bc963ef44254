"""Digests: the grammar, the registered algorithms and the resumable hashers.

Spec: oci-image-spec-descriptor.md "Digests" (grammar), "Registered algorithms" (SHA-256, SHA-512:
lowercase hex of 64 / 128 characters), "Verification"; oci-distribution-spec.md "Pushing a blob in
chunks" (an upload's hash state is carried between requests, see docs of digests.py).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi.digests import (
    Digest,
    check_algorithm,
    digest_bytes,
    new_hasher,
    parse_digest,
    restore_hasher,
)
from docker_registry_wsgi.errors import DigestInvalid, RegistryError, Unsupported
from tests.unit_fixtures import FAST, algorithms

HEX = "0123456789abcdef"
EMPTY_SHA256 = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# -- parse / format ------------------------------------------------------------------------------


@FAST
@given(algorithm=algorithms, data=st.binary(max_size=256))
def test_registered_algorithms_round_trip(algorithm: str, data: bytes) -> None:
    """descriptor.md "Registered algorithms": ``<alg>:<hexdigest>`` parses and formats back unchanged."""
    text = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    digest = parse_digest(text)
    assert digest == Digest(algorithm, hashlib.new(algorithm, data).hexdigest())
    assert str(digest) == text
    assert parse_digest(str(digest)) == digest
    assert digest_bytes(data, algorithm) == digest


def test_digest_bytes_defaults_to_sha256() -> None:
    """descriptor.md "Digest calculations": the empty blob's well-known sha256 digest."""
    assert str(digest_bytes(b"")) == EMPTY_SHA256


def test_digests_order_and_hash_by_value() -> None:
    """Digests are values: equal digests are interchangeable as dict keys and sort stably."""
    a, b = parse_digest("sha256:" + "0" * 64), parse_digest("sha256:" + "f" * 64)
    assert a < b and {a: 1}[Digest("sha256", "0" * 64)] == 1


@FAST
@given(algorithm=algorithms, hexdigest=st.text(alphabet=HEX, min_size=1, max_size=160))
def test_hex_length_is_enforced(algorithm: str, hexdigest: str) -> None:
    """descriptor.md "SHA-256"/"SHA-512": the encoded part is exactly 64 / 128 hex characters."""
    expected = {"sha256": 64, "sha512": 128}[algorithm]
    text = f"{algorithm}:{hexdigest}"
    if len(hexdigest) == expected:
        assert str(parse_digest(text)) == text
    else:
        with pytest.raises(DigestInvalid):
            parse_digest(text)


@FAST
@given(algorithm=algorithms, data=st.binary(max_size=32), position=st.integers(min_value=0))
def test_uppercase_hex_is_rejected(algorithm: str, data: bytes, position: int) -> None:
    """descriptor.md "SHA-256": the encoded portion MUST match ``/[a-f0-9]{64}/`` (lowercase)."""
    hexdigest = hashlib.new(algorithm, data).hexdigest()
    letters = [i for i, c in enumerate(hexdigest) if c in "abcdef"]
    if not letters:  # pragma: no cover - every 64-char digest has a letter in practice
        return
    i = letters[position % len(letters)]
    with pytest.raises(DigestInvalid):
        parse_digest(f"{algorithm}:{hexdigest[:i]}{hexdigest[i].upper()}{hexdigest[i + 1:]}")


@pytest.mark.parametrize(
    "text",
    [
        "",
        ":",
        "sha256",
        "sha256:",
        ":" + "a" * 64,
        "sha256:" + "a" * 63,
        "sha256:" + "a" * 65,
        "sha512:" + "a" * 64,
        "sha256:" + "A" * 64,
        "SHA256:" + "a" * 64,
        "sha256:" + "g" * 64,
        "sha256:" + "a" * 63 + "\x00",
        "sha256:" + "a" * 64 + "\x00",
        "sha256\x00:" + "a" * 64,
        "sha256:" + "a" * 64 + "\n",
        " sha256:" + "a" * 64,
        "sha256 :" + "a" * 64,
        "sha256::" + "a" * 64,
        "sha256:" + "a" * 32 + ":" + "a" * 31,
        "sha256:../../" + "a" * 58,
        "sha256:" + "a" * 10_000,
        "sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564",
        "multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8",
        "md5:" + "a" * 32,
        "sha1:" + "a" * 40,
        "sha384:" + "a" * 96,
        "sha256:" + "\u0661" * 64,  # Arabic-Indic digits are not hex
    ],
)
def test_malformed_or_unregistered_digests_are_digest_invalid(text: str) -> None:
    """descriptor.md "Digests"/"Registered algorithms": only sha256/sha512 in lowercase hex are accepted."""
    with pytest.raises(DigestInvalid) as info:
        parse_digest(text)
    assert info.value.status == 400 and info.value.code == "DIGEST_INVALID"
    assert len(str(info.value.detail)) < 1024, "the detail must not echo an overlong input back"


@pytest.mark.parametrize("value", [None, b"sha256:" + b"a" * 64, 42, ["sha256:" + "a" * 64]])
def test_non_strings_are_digest_invalid(value: object) -> None:
    """A digest that is not a string (e.g. from a JSON descriptor) is refused, not a TypeError."""
    with pytest.raises(DigestInvalid):
        parse_digest(value)  # type: ignore[arg-type]


def test_unknown_algorithm_names_the_supported_ones() -> None:
    """descriptor.md "Registered algorithms": the error says which algorithms the registry verifies."""
    with pytest.raises(DigestInvalid) as info:
        parse_digest("md5:" + "a" * 32)
    assert "md5" in info.value.message
    assert info.value.detail["supported"] == ["sha256", "sha512"]


@FAST
@given(text=st.text(max_size=200))
@example(text="sha256:" + "a" * 64)
def test_arbitrary_text_either_parses_to_itself_or_is_a_registry_error(text: str) -> None:
    """descriptor.md "Digests": no input makes the parser fail other than with DIGEST_INVALID."""
    try:
        digest = parse_digest(text)
    except DigestInvalid:
        return
    assert str(digest) == text


# -- hashers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ["md5", "sha1", "SHA256", "", "sha256 "])
def test_hashers_only_for_registered_algorithms(algorithm: str) -> None:
    """spec "Pushing a blob in chunks" (``digest-algorithm``): unknown algorithms are UNSUPPORTED."""
    with pytest.raises(Unsupported):
        check_algorithm(algorithm)
    with pytest.raises(Unsupported):
        new_hasher(algorithm)
    with pytest.raises(Unsupported):
        restore_hasher(algorithm, b"")
    with pytest.raises(RegistryError):
        digest_bytes(b"x", algorithm)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_fresh_hasher_is_the_empty_digest(algorithm: str) -> None:
    """A session with no bytes yet finalizes to the digest of the empty blob."""
    assert new_hasher(algorithm).finalize() == hashlib.new(algorithm).hexdigest()
    state = new_hasher(algorithm).serialize()
    assert restore_hasher(algorithm, state).finalize() == hashlib.new(algorithm).hexdigest()


# Sizes around the block boundaries (64 bytes for sha256, 128 for sha512) and the padding limits.
_BOUNDARY_SIZES = [0, 1, 55, 56, 63, 64, 65, 111, 112, 127, 128, 129, 1000, 4096 + 3]


@FAST
@given(
    algorithm=algorithms,
    data=st.one_of(
        st.binary(max_size=2048),
        st.sampled_from(_BOUNDARY_SIZES).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=12),
)
def test_resumable_hash_over_any_split_equals_hashlib(algorithm: str, data: bytes, cuts: list[int]) -> None:
    """Resumable push (spec "Resumable Push"): the state saved after every piece continues exactly.

    The data is cut at random points; every piece is hashed by a hasher restored from the state
    serialized after the previous piece, as consecutive PATCH requests in different processes do.
    """
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    state = new_hasher(algorithm).serialize()
    for start, end in zip(points, points[1:]):
        hasher = restore_hasher(algorithm, state)
        hasher.update(data[start:end])
        state = hasher.serialize()
        # The state is a value: restoring it twice gives the same continuation.
        assert restore_hasher(algorithm, state).serialize() == state
    assert restore_hasher(algorithm, state).finalize() == hashlib.new(algorithm, data).hexdigest()


@FAST
@given(algorithm=algorithms, data=st.binary(max_size=600), cut=st.integers(min_value=0, max_value=600))
def test_serialize_does_not_disturb_the_running_hash(algorithm: str, data: bytes, cut: int) -> None:
    """Serializing mid-way (to record the session) leaves the same hasher usable for the rest."""
    hasher = new_hasher(algorithm)
    hasher.update(data[:cut])
    hasher.serialize()
    hasher.update(data[cut:])
    assert hasher.finalize() == hashlib.new(algorithm, data).hexdigest()
