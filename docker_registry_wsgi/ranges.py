"""The byte-range formats of the API, parsed and formatted in one place.

- upload ``Content-Range: <start>-<end>`` (spec "Pushing a blob in chunks"; ``bytes=`` and
  ``"bytes "`` prefixes are tolerated, as distribution does);
- upload status ``Range: 0-<end>`` with no unit, which docker parses with ``%d-%d``;
- blob download ``Range: bytes=a-b`` (RFC 9110 section 14; one range only) and its
  ``Content-Range: bytes a-b/N`` answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ByteRange",
    "RangeSyntaxError",
    "parse_content_range",
    "format_upload_range",
    "parse_range_header",
    "UnsatisfiableRange",
]

_MAX_DIGITS = 19  # fits in a signed 64-bit offset, as every client uses
_CONTENT_RANGE = re.compile(r"(?:bytes[ =])?([0-9]{1,19})-([0-9]{1,19})(?:/(?:[0-9]{1,19}|\*))?")
_RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")


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


def format_upload_range(size: int) -> str:
    """The ``Range`` header of an upload of ``size`` bytes: ``0-<last offset>``.

    An empty upload is ``0-0`` (as distribution answers, and clients accept), although it names
    no byte; clients read the offset from it as ``end + 1`` only after data was sent.
    """
    return f"0-{max(size - 1, 0)}"


def parse_range_header(value: str, total: int) -> ByteRange | None:
    """Resolve a download ``Range`` header against a blob of ``total`` bytes.

    Returns ``None`` when the header should be ignored (not a single byte range, per RFC 9110
    a server may ignore it), raises :class:`UnsatisfiableRange` for a range outside the blob.
    """
    match = _RANGE.fullmatch(value.strip().replace(" ", ""))
    if not match:
        return None
    first, last = match[1], match[2]
    if first == "" and last == "":
        return None
    if first == "":  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or total == 0:
            raise UnsatisfiableRange(value)
        return ByteRange(max(total - suffix, 0), total - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # RFC 9110 14.1.1: an invalid range-spec makes the header ignorable
    if start >= total:
        raise UnsatisfiableRange(value)
    end = int(last) if last else total - 1
    return ByteRange(start, min(end, total - 1))
