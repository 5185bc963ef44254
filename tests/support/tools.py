"""Find the external tools the end-to-end tests drive, or skip (locally) / fail (under CI).

The brief: a missing tool may skip a test locally, with the reason, but under CI (``CI=true``)
the end-to-end tests must run, so a missing tool is a failure there.
"""

from __future__ import annotations

import importlib
import os
import shutil
from types import ModuleType

import pytest

__all__ = ["in_ci", "require_tool", "require_module", "skip_or_fail"]


def in_ci() -> bool:
    """True when the environment says we run under CI (``CI`` set to a true value)."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes", "on"}


def skip_or_fail(reason: str) -> None:
    """Skip the current test with ``reason``, or fail it with ``reason`` when :func:`in_ci`."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: end-to-end tests must not skip)", pytrace=False)
    pytest.skip(reason)


def require_tool(name: str, install_hint: str = "") -> str:
    """Return the absolute path of executable ``name``; skip (locally) or fail (CI) if absent.

    ``install_hint`` is appended to the reason, e.g. ``"apt-get install -y skopeo"``.
    """
    path = shutil.which(name)
    if path is None:
        hint = f"; install it with: {install_hint}" if install_hint else ""
        skip_or_fail(f"{name} is not on PATH{hint}")
    assert path is not None
    return path


def require_module(name: str, install_hint: str = "") -> ModuleType:
    """Import and return module ``name``; skip (locally) or fail (CI) if it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        hint = f"; install it with: {install_hint}" if install_hint else ""
        skip_or_fail(f"Python module {name} cannot be imported ({exc}){hint}")
        raise  # unreachable: skip_or_fail raises
