"""Byte ranges: upload ``Content-Range``, the upload ``Range`` answer, and download ``Range``.

Spec: oci-distribution-spec.md "Pushing a blob in chunks" (``Content-Range: <start>-<end>``,
inclusive, ``^[0-9]+-[0-9]+$``; answer ``Range: 0-<end-of-range>``), docker-registry-http-api-v2.md
"Upload Progress" / "Chunked Upload", and RFC 9110 section 14 for download ranges (parsed by
werkzeug, resolved by our adapter: one range; ``416`` when unsatisfiable; an invalid or
multi-range header may be ignored) and section 13.1.5 for ``If-Range``.
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
    if_range_holds,
    parse_answer_range,
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


def _spec_text(spec: tuple[str, int | None, int | None]) -> str:
    kind, first, last = spec
    if kind == "suffix":
        return f"-{last}"
    if kind == "open":
        return f"{first}-"
    return f"{first}-{last}"


def _header(spec: tuple[str, int | None, int | None], unit: str = "bytes", pad: str = "") -> str:
    return f"{unit}={pad}{_spec_text(spec)}{pad}"


#: RFC 9110 14.1: "range-unit" is case-insensitive (section 14.1 names "bytes" a token; tokens
#: of range units compare case-insensitively, as werkzeug lower-cases them).
units = st.sampled_from(["bytes", "Bytes", "BYTES", "bYtEs"])
pads = st.sampled_from(["", " ", "\t"])


@FAST
@given(spec=range_specs, total=st.integers(min_value=0, max_value=260), unit=units, pad=pads)
@example(spec=("open", 0, None), total=0, unit="bytes", pad="")
@example(spec=("suffix", None, 0), total=10, unit="bytes", pad="")
@example(spec=("suffix", None, 500), total=10, unit="bytes", pad="")
@example(spec=("closed", 0, 10**6), total=10, unit="bytes", pad="")
@example(spec=("closed", 10, 10), total=10, unit="bytes", pad="")
@example(spec=("closed", 9, 9), total=10, unit="bytes", pad="")
@example(spec=("closed", 0, 9), total=100, unit="Bytes", pad="")
def test_download_range_matches_a_slicing_model(spec: tuple[str, int | None, int | None], total: int,
                                                unit: str, pad: str) -> None:
    """RFC 9110 14.1.2 (suffix, open-ended, clamped last-pos), 15.5.17 (416): checked against slicing.

    The unit in any case (``Bytes=0-9``) is the bytes unit (RFC 9110 14.1).
    """
    expected = _model(spec, total)
    data = bytes(i % 251 for i in range(total))
    header = _header(spec, unit, pad)
    if expected == "416":
        with pytest.raises(UnsatisfiableRange):
            parse_range_header(header, total)
        return
    resolved = parse_range_header(header, total)
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
        "bytes=\u0660-\u0665",
        "bytes=+0-5",
        "bytes=0-5-6",
        "bytes=0-" + "9" * 5000,  # more digits than Python converts: unparsable, so ignored
        "",
        None,
    ],
)
def test_ignorable_download_ranges(value: str | None) -> None:
    """RFC 9110 14.2: a server MAY ignore a Range it does not support or cannot parse (serve 200)."""
    assert parse_range_header(value, 100) is None


@FAST
@given(specs=st.lists(range_specs, min_size=2, max_size=4), total=st.integers(0, 300),
       unit=units, pad=pads)
def test_multi_range_is_ignored(specs: list[tuple[str, int | None, int | None]], total: int,
                                unit: str, pad: str) -> None:
    """RFC 9110 14.2: a server MAY ignore a multi-range request and send the whole blob (200),
    whether or not its ranges are satisfiable, ordered or overlapping: never an error."""
    header = f"{unit}=" + f"{pad},{pad}".join(_spec_text(spec) for spec in specs)
    assert parse_range_header(header, total) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-" + "9" * 40, ByteRange(0, 99)),  # a last-pos past the end is clamped
        ("bytes=-" + "9" * 40, ByteRange(0, 99)),  # a suffix longer than the blob is all of it
        ("bytes=" + "9" * 40 + "-", None),  # a first-pos past the end: 416
        ("bytes=-0", None),  # suffix-length 0 selects nothing: 416 (werkzeug reads it as "0-")
    ],
)
def test_large_and_zero_positions(value: str, expected: ByteRange | None) -> None:
    """RFC 9110 14.1.1: positions may exceed any integer type ("ought to anticipate potentially
    large decimal numerals"); 14.1.2 clamps last-pos and suffix-length to the representation."""
    if expected is None:
        with pytest.raises(UnsatisfiableRange):
            parse_range_header(value, 100)
    else:
        assert parse_range_header(value, 100) == expected


@FAST
@given(value=st.text(alphabet="bytesBYTES=-0123456789,+ \t", max_size=40), total=st.integers(0, 10**12))
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


# -- a 206 answer's Content-Range (RFC 9110 section 14.4), as an object store sends it ---------------


@FAST
@given(positions=st.lists(offsets, min_size=3, max_size=3, unique=True), pad=st.sampled_from(["", " "]))
@example(positions=[0, 0, 1], pad="")
@example(positions=[0, MAX19 - 1, MAX19], pad="")
def test_answer_range_round_trip(positions: list[int], pad: str) -> None:
    """What :meth:`ByteRange.content_range` writes (``bytes a-b/N``), parsed back: range and length."""
    first, last, total = sorted(positions)
    answered = ByteRange(first, last)
    assert parse_answer_range(pad + answered.content_range(total) + pad) == (answered, total)


_SPEC_ANSWER_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+)")


@FAST
@given(value=st.text(alphabet="0123456789-/ =*bytesx", max_size=40))
@example(value="bytes 0-9/10")
@example(value="bytes 0-10/10")  # the last byte is at the length: past the end
@example(value="bytes 5-4/10")
@example(value="bytes 0-9/*")  # a length the reader needs, left unknown
@example(value="bytes */10")  # the unsatisfied-range form of a 416
def test_answer_range_parser_against_the_grammar(value: str) -> None:
    """Any text parses exactly when it is ``bytes first-last/length`` with first <= last < length
    (section 14.4's ``range-resp`` with a known length, 19 digits at most each)."""
    match = _SPEC_ANSWER_RANGE.fullmatch(value.strip())
    valid = (bool(match) and all(len(group) <= 19 for group in match.groups())
             and int(match[1]) <= int(match[2]) < int(match[3]))
    if valid:
        assert parse_answer_range(value) == (ByteRange(int(match[1]), int(match[2])), int(match[3]))
    else:
        with pytest.raises(RangeSyntaxError):
            parse_answer_range(value)


# -- If-Range (RFC 9110 section 13.1.5) ------------------------------------------------------------

ETAG = '"sha256:' + "a" * 64 + '"'


@pytest.mark.parametrize(
    ("if_range", "holds"),
    [
        (None, True),  # no precondition
        (ETAG, True),
        (f" {ETAG} ", True),
        ('"sha256:' + "b" * 64 + '"', False),  # another tag: send the whole representation
        ("W/" + ETAG, False),  # strong comparison: a weak tag never matches (13.1.5, 8.8.3.2)
        (ETAG[1:-1], False),  # an unquoted digest is not an entity-tag
        ("Wed, 21 Oct 2015 07:28:00 GMT", False),  # a date: blobs have no Last-Modified
        ("", False),
        (f"{ETAG}, {ETAG}", False),  # If-Range holds one validator, not a list
    ],
)
def test_if_range(if_range: str | None, holds: bool) -> None:
    """RFC 9110 13.1.5: the Range applies only if the If-Range validator strongly matches."""
    assert if_range_holds(if_range, ETAG) is holds
