"""Repository names, tags and references (tag or digest), validated in one place.

Grammar from the OCI Distribution Spec, "Pulling manifests": a name is
``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*``; a tag is
``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``.
"""

from __future__ import annotations

import re
from typing import Union

from .digests import Digest, parse_digest
from .errors import NameInvalid, TagInvalid

__all__ = ["NAME_PATTERN", "parse_name", "parse_tag", "parse_reference", "is_digest", "Reference", "MAX_NAME_LENGTH"]

_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
#: The repository name grammar as a regular expression, for grammars that embed it (scopes).
NAME_PATTERN = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_NAME = re.compile(NAME_PATTERN)
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")

#: Clients limit ``host[:port]/name`` to 255 characters; distribution caps the name itself at 255.
MAX_NAME_LENGTH = 255

Reference = Union[str, Digest]


def parse_name(name: str) -> str:
    """Return ``name`` if it is a valid repository name, else :class:`NameInvalid`."""
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid({"name": name[:MAX_NAME_LENGTH] + "...", "max_length": MAX_NAME_LENGTH},
                          message="repository name too long")
    if not _NAME.fullmatch(name):
        raise NameInvalid({"name": name})
    return name


def parse_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid tag, else :class:`TagInvalid` (MANIFEST_INVALID)."""
    if not _TAG.fullmatch(tag):
        raise TagInvalid({"tag": tag[:200]})
    return tag


def is_digest(reference: str) -> bool:
    """Whether a manifest reference is written as a digest (it has a colon; tags cannot)."""
    return ":" in reference


def parse_reference(reference: str) -> Reference:
    """A manifest reference: a :class:`Digest` when it contains ``:``, else a tag."""
    return parse_digest(reference) if is_digest(reference) else parse_tag(reference)
