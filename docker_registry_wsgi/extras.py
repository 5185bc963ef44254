"""Optional dependencies, imported with a one-line answer when they are missing.

The core needs only werkzeug and rehashes; each optional feature names the extra that brings
what it needs, so ``import`` of a scheme whose extra is not installed says what to install
instead of ``ModuleNotFoundError: No module named 'bcrypt'``.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingExtra", "require"]


class MissingExtra(ImportError):
    """A feature's optional dependency is not installed; the message names the extra."""


def require(module: str, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtra` naming the ``extra`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtra(
            f"{feature} needs {module.split('.')[0]}: pip install 'docker-registry-wsgi[{extra}]'"
        ) from None
