"""Auth hooks that the framework tests name by import string, as a site's configuration would."""

from __future__ import annotations

from typing import Any, Mapping

from docker_registry_wsgi.auth.base import ReadOnly

#: An auth hook object.
read_only = ReadOnly()

#: Settings each factory call received.
factory_calls: list[Mapping[str, Any]] = []


def make_read_only(settings: Mapping[str, Any]) -> ReadOnly:
    """An auth hook factory, called with the site's settings."""
    factory_calls.append(settings)
    return ReadOnly()
