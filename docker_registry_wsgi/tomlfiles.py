"""TOML text as a dict, on every Python the package supports (a leaf: the option table and the
retention rules both read TOML, and neither imports the other for it)."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["toml_loads"]


def toml_loads(text: str) -> dict[str, Any]:
    """TOML text as a dict: ``tomllib`` (Python 3.11+), else ``tomli`` (a dependency on 3.10)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    loaded: dict[str, Any] = tomllib.loads(text)
    return loaded
