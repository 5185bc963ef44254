"""Byte ranges: upload ``Content-Range``, the upload ``Range`` answer, and download ``Range``.

Spec: oci-distribution-spec.md "Pushing a blob in chunks" (``Content-Range: <start>-<end>``,
inclusive, ``^[0-9]+-[0-9]+$``; answer ``Range: 0-<end-of-range>``), docker-registry-http-api-v2.md
"Upload Progress" / "Chunked Upload", and RFC 9110 section 14 for download ranges (one range;
``416`` when unsatisfiable; an invalid or multi-range header may be ignored).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import assume, example, given, strategies as st

from docker_registry_wsgi.ranges import (
    ByteRange,
    RangeSyntaxError,
    UnsatisfiableRange,
    format_upload_range,
    parse_content_range,
    parse_range_header,
)
from tests.unit_fixtures import FAST

MAX19 = 10**19 - 1
offsets = st.integers(min_value=0, max_value=MAX19)


@st.composite
def ordered_pairs(draw: st.DrawFn) -> tuple[int, int]:
    a, b = draw(offsets), draw(offsets)
    return min(a, b), max(a, b)


# -- upload Content-Range ------------------------------------------------------------------------


@FAST
@given(pair=ordered_pairs(), prefix=st.sampled_from(["", "bytes=", "bytes "]),
       total=st.sampled_from(["", "/*", "/12345"]), pad=st.sampled_from(["", " ", "\t"]))
@example(pair=(0, 0), prefix="", total="", pad="")
@example(pair=(0, MAX19), prefix="", total="", pad="")
def test_content_range_round_trip(pair: tuple[int, int], prefix: str, total: str, pad: str) -> None:
    """spec "Pushing a blob in chunks": ``<start>-<end>`` (inclusive) parses and formats back.

    The ``bytes=``/``bytes `` prefixes and a ``/total`` suffix are tolerated as distribution does.
    """
    start, end = pair
    parsed = parse_content_range(f"{pad}{prefix}{start}-{end}{total}{pad}")
    assert parsed == ByteRange(start, end)
    assert parsed.length == end - start + 1
    assert parse_content_range(f"{parsed.start}-{parsed.end}") == parsed


@FAST
@given(pair=ordered_pairs())
def test_inverted_content_range_is_rejected(pair: tuple[int, int]) -> None:
    """spec "Pushing a blob in chunks": the range is inclusive, so ``end < start`` names no bytes."""
    start, end = pair
    assume(start != end)
    with pytest.raises(RangeSyntaxError):
        parse_content_range(f"{end}-{start}")


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-",
        "0",
        "0-",
        "-5",
        "5-4",
        "-1-5",
        "0--5",
        "a-b",
        "0x0-0x5",
        "0-5-6",
        "0 - 5",
        "bytes=",
        "bytes=0-",
        "bytes=-5",
        "bits=0-5",
        "BYTES 0-5",
        "0-5,6-7",
        "0-5/",
        "0-5/abc",
        "+0-5",
        "0-+5",
        "0.0-5",
        "\u0660-\u0665",  # Arabic-Indic digits: int() would take them, the header grammar does not
        "0-5\x00",
        "0\x00-5",
        "1" * 20 + "-" + "1" * 20,
        "0-" + "9" * 20,
        "0-" + "1" * 1000,
    ],
)
def test_malformed_content_range_is_rejected(value: str) -> None:
    """spec "Pushing a blob in chunks": the range MUST match ``^[0-9]+-[0-9]+$`` (19 digits at most)."""
    with pytest.raises(RangeSyntaxError):
        parse_content_range(value)


_SPEC_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]+)-([0-9]+)(?:/(?:[0-9]+|\*))?")


@FAST
@given(value=st.text(alphabet="0123456789-/ =*bytesx\x00", max_size=50))
def test_content_range_parser_against_the_spec_grammar(value: str) -> None:
    """spec "Pushing a blob in chunks": any text is accepted exactly when it fits the grammar.

    Oracle: the spec's ``[0-9]+-[0-9]+`` plus the tolerated prefixes, with start <= end and
    offsets of at most 19 digits (a signed 64-bit offset, as clients use).
    """
    match = _SPEC_CONTENT_RANGE.fullmatch(value.strip())
    valid = bool(match) and len(match[1]) <= 19 and len(match[2]) <= 19 and int(match[1]) <= int(match[2])
    if valid:
        assert parse_content_range(value) == ByteRange(int(match[1]), int(match[2]))
    else:
        with pytest.raises(RangeSyntaxError):
            parse_content_range(value)


def test_byte_range_refuses_negative_and_inverted() -> None:
    """A ByteRange is always a non-empty inclusive range."""
    with pytest.raises(RangeSyntaxError):
        ByteRange(-1, 5)
    with pytest.raises(RangeSyntaxError):
        ByteRange(5, 4)
    assert ByteRange(7, 7).length == 1


def test_range_syntax_error_is_a_value_error() -> None:
    """Callers that catch ValueError for bad headers also catch range errors."""
    assert issubclass(RangeSyntaxError, ValueError) and issubclass(UnsatisfiableRange, ValueError)


# -- upload Range answer --------------------------------------------------------------------------


@FAST
@given(size=st.integers(min_value=1, max_value=MAX19))
def test_upload_range_is_zero_to_last_offset(size: int) -> None:
    """spec "Pushing a blob in chunks": ``Range: 0-<end-of-range>``, no unit (docker reads ``%d-%d``)."""
    value = format_upload_range(size)
    assert re.fullmatch(r"0-[0-9]+", value)
    first, last = (int(x) for x in value.split("-"))
    assert (first, last + 1) == (0, size)
    assert parse_content_range(value) == ByteRange(0, size - 1)


def test_empty_upload_range_is_zero_zero() -> None:
    """docker-registry-http-api-v2.md "Upload Progress": an empty session answers ``0-0`` as distribution does."""
    assert format_upload_range(0) == "0-0"


# -- download Range (RFC 9110 section 14) -----------------------------------------------------------


def _model(spec: tuple[str, int | None, int | None], total: int) -> bytes | None | str:
    """What a single range-spec selects of ``bytes(range(total))`` by plain slicing.

    Returns the selected bytes, ``None`` when the header is to be ignored, or ``"416"``.
    """
    data = bytes(i % 251 for i in range(total))
    kind, first, last = spec
    if kind == "suffix":
        assert last is not None
        if last == 0:
            return "416"
        selected = data[-last:]
    elif kind == "open":
        assert first is not None
        selected = data[first:]
    else:
        assert first is not None and last is not None
        if last < first:
            return None
        selected = data[first : last + 1]
    return selected if selected else "416"


small = st.integers(min_value=0, max_value=300)
range_specs = st.one_of(
    st.tuples(st.just("suffix"), st.none(), small),
    st.tuples(st.just("open"), small, st.none()),
    st.tuples(st.just("closed"), small, small),
)


def _header(spec: tuple[str, int | None, int | None]) -> str:
    kind, first, last = spec
    if kind == "suffix":
        return f"bytes=-{last}"
    if kind == "open":
        return f"bytes={first}-"
    return f"bytes={first}-{last}"


@FAST
@given(spec=range_specs, total=st.integers(min_value=0, max_value=260))
@example(spec=("open", 0, None), total=0)
@example(spec=("suffix", None, 0), total=10)
@example(spec=("suffix", None, 500), total=10)
@example(spec=("closed", 0, 10**6), total=10)
@example(spec=("closed", 10, 10), total=10)
@example(spec=("closed", 9, 9), total=10)
def test_download_range_matches_a_slicing_model(spec: tuple[str, int | None, int | None], total: int) -> None:
    """RFC 9110 14.1.2 (suffix, open-ended, clamped last-pos), 15.5.17 (416): checked against slicing."""
    expected = _model(spec, total)
    data = bytes(i % 251 for i in range(total))
    if expected == "416":
        with pytest.raises(UnsatisfiableRange):
            parse_range_header(_header(spec), total)
        return
    resolved = parse_range_header(_header(spec), total)
    if expected is None:
        assert resolved is None
        return
    assert resolved is not None
    assert 0 <= resolved.start <= resolved.end < total
    assert data[resolved.start : resolved.end + 1] == expected
    assert resolved.content_range(total) == f"bytes {resolved.start}-{resolved.end}/{total}"


@pytest.mark.parametrize(
    "value",
    [
        "bytes=0-1,3-4",  # multi-range: a server may ignore it and send 200
        "bytes=0-1, 3-4",
        "bytes=-",
        "bytes=",
        "items=0-5",
        "0-5",
        "bytes 0-5",
        "bytes=a-b",
        "bytes=5-2",  # invalid range-spec: ignorable (RFC 9110 14.1.1)
        "bytes=0-" + "9" * 20,
        "bytes=" + "9" * 20 + "-",
        "bytes=-" + "9" * 20,
        "bytes=\u0660-\u0665",
        "",
    ],
)
def test_ignorable_download_ranges(value: str) -> None:
    """RFC 9110 14.2: a server MAY ignore a Range it does not support or cannot parse (serve 200)."""
    assert parse_range_header(value, 100) is None


@FAST
@given(value=st.text(alphabet="bytes=-0123456789, ", max_size=40), total=st.integers(0, 10**12))
def test_download_range_never_fails_otherwise(value: str, total: int) -> None:
    """Any header text yields an in-bounds range, None, or UnsatisfiableRange (never another error)."""
    try:
        resolved = parse_range_header(value, total)
    except UnsatisfiableRange:
        return
    if resolved is not None:
        assert 0 <= resolved.start <= resolved.end < total


def test_download_range_tolerates_spaces() -> None:
    """Clients that write ``bytes= 0-9`` still get their range."""
    assert parse_range_header(" bytes= 0-9 ", 100) == ByteRange(0, 9)


@pytest.mark.parametrize("value,total", [("bytes=5-", 3), ("bytes=3-", 3), ("bytes=0-", 0), ("bytes=3-9", 3)])
def test_open_ended_range_beyond_end_is_416(value: str, total: int) -> None:
    """RFC 9110 14.1.2: a first-byte-pos at or after the blob's length is unsatisfiable (416)."""
    with pytest.raises(UnsatisfiableRange):
        parse_range_header(value, total)
