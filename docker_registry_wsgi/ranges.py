"""The byte-range formats of the API, parsed and formatted in one place.

- upload ``Content-Range: <start>-<end>`` (spec "Pushing a blob in chunks"; ``bytes=`` and
  ``"bytes "`` prefixes are tolerated, as distribution does);
- upload status ``Range: 0-<end>`` with no unit, which docker parses with ``%d-%d``;
- blob download ``Range`` (RFC 9110 section 14), parsed by werkzeug and resolved here against
  the blob's length (one range; a list of several is ignored, as section 14.2 allows), its
  ``Content-Range: bytes a-b/N`` answer, and the ``If-Range`` precondition (section 13.1.5);
- the ``Content-Range: bytes a-b/N`` of a 206 answer the registry reads (an object store's, for
  a ranged GET: section 14.4).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from werkzeug.http import parse_range_header as _werkzeug_range

__all__ = [
    "ByteRange",
    "RangeSyntaxError",
    "parse_content_range",
    "parse_answer_range",
    "format_upload_range",
    "parse_range_header",
    "if_range_holds",
    "UnsatisfiableRange",
]

_MAX_DIGITS = 19  # fits in a signed 64-bit offset, as every client uses
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")
_ANSWER_RANGE = re.compile(r"bytes ([0-9]{1,19})-([0-9]{1,19})/([0-9]{1,19})")


class RangeSyntaxError(ValueError):
    """A range header that is malformed or inverted."""


class UnsatisfiableRange(ValueError):
    """A well-formed download range that lies outside the blob (answer 416)."""


@dataclass(frozen=True)
class ByteRange:
    """An inclusive byte range ``start``..``end``, as the HTTP headers write it."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise RangeSyntaxError(f"inverted range {self.start}-{self.end}")

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self, total: int) -> str:
        """The ``Content-Range`` of a 206 answer."""
        return f"bytes {self.start}-{self.end}/{total}"


def parse_content_range(value: str) -> ByteRange:
    """Parse an upload chunk's ``Content-Range`` header into an inclusive range."""
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if not match:
        raise RangeSyntaxError(f"malformed Content-Range {value[:64]!r}")
    return ByteRange(int(match[1]), int(match[2]))


def parse_answer_range(value: str) -> tuple[ByteRange, int]:
    """The range and the complete length of a 206 answer's ``Content-Range: bytes a-b/N``.

    RFC 9110 section 14.4's ``range-resp`` with a known length; :class:`RangeSyntaxError` for
    anything else (``*`` for the length, another unit, a range inverted or past the length).
    """
    match = _ANSWER_RANGE.fullmatch(value.strip())
    if not match:
        raise RangeSyntaxError(f"malformed Content-Range {value[:64]!r}")
    answered, total = ByteRange(int(match[1]), int(match[2])), int(match[3])
    if answered.end >= total:
        raise RangeSyntaxError(f"Content-Range {value[:64]!r} ends past the length")
    return answered, total


def format_upload_range(size: int) -> str:
    """The ``Range`` header of an upload of ``size`` bytes: ``0-<last offset>``.

    An empty upload is ``0-0`` (as distribution answers, and clients accept), although it names
    no byte; clients read the offset from it as ``end + 1`` only after data was sent.
    """
    return f"0-{max(size - 1, 0)}"


def parse_range_header(value: str | None, total: int) -> ByteRange | None:
    """Resolve a download ``Range`` header against a blob of ``total`` bytes (RFC 9110 14.1.2).

    Returns ``None`` when the header is to be ignored (absent, malformed, another unit, or a
    list of several ranges: section 14.2 lets a server ignore any of these and send 200); raises
    :class:`UnsatisfiableRange` for a single range that selects no byte of the blob (416).
    """
    parsed = _werkzeug_range(value)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return None
    first, stop = parsed.ranges[0]  # werkzeug's ranges end exclusively; a suffix has first < 0
    # werkzeug reads "-0" as the integer 0 and so as "0-"; the text tells the suffix apart.
    if stop is None and (first < 0 or (value or "").partition("=")[2].lstrip().startswith("-")):
        if first == 0 or total == 0:  # suffix-length 0 (14.1.1), or nothing to select
            raise UnsatisfiableRange(value)
        return ByteRange(max(total + first, 0), total - 1)
    if first >= total:
        raise UnsatisfiableRange(value)
    return ByteRange(first, total - 1 if stop is None else min(stop, total) - 1)


def if_range_holds(if_range: str | None, etag: str) -> bool:
    """Whether a ``Range`` is to be honoured given the request's ``If-Range`` (RFC 9110 13.1.5).

    ``etag`` is the representation's strong entity tag, quoted. The precondition holds when there
    is none or when it is that tag by strong comparison (a weak ``W/`` tag never matches); a date
    never holds, as blobs carry no ``Last-Modified``. When it fails the whole blob is sent (200).
    """
    return if_range is None or if_range.strip() == etag
