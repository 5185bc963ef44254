"""docker_registry_wsgi.contrib: settings to a registry, sizes from ini strings."""

from __future__ import annotations

from pathlib import Path

import pytest
import webtest
from hypothesis import given, strategies as st

from docker_registry_wsgi.app import Registry
from docker_registry_wsgi.auth.base import ReadOnly
from docker_registry_wsgi.contrib import ConfigurationError, build_registry, parse_size
from docker_registry_wsgi.storage.memory import MemoryStorage


@pytest.mark.parametrize(
    ("value", "size"),
    [(4096, 4096), ("4096", 4096), ("4MiB", 4 * 1024**2), ("512K", 512 * 1024), ("1 GiB", 1024**3),
     ("2mb", 2 * 1024**2), ("7B", 7)],
)
def test_parse_size(value: int | str, size: int) -> None:
    assert parse_size(value, "x") == size


@pytest.mark.parametrize("value", ["", "MiB", "-1", "0", "1.5MiB", "4 TiB", "12 apples", 0])
def test_parse_size_refuses_what_is_not_a_positive_size(value: int | str) -> None:
    with pytest.raises(ConfigurationError, match="max_manifest_size"):
        parse_size(value, "max_manifest_size")


@given(st.integers(min_value=1, max_value=2**40), st.sampled_from(["", "B", "K", "KiB", "M", "MiB", "G", "GiB"]))
def test_parse_size_units_are_binary(number: int, unit: str) -> None:
    factor = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[unit[:1]]
    assert parse_size(f"{number}{unit}", "x") == number * factor


@given(st.text(max_size=12))
def test_parse_size_never_fails_other_than_with_configuration_error(text: str) -> None:
    try:
        assert parse_size(text, "x") > 0
    except ConfigurationError:
        pass


def test_build_registry_on_a_folder(tmp_path: Path) -> None:
    registry = build_registry(root=tmp_path / "data", auth=ReadOnly(), max_manifest_size="1MiB")
    assert isinstance(registry, Registry)
    assert (tmp_path / "data").is_dir()
    assert webtest.TestApp(registry).get("/v2/").status_int == 200
    assert webtest.TestApp(registry).post("/v2/a/blobs/uploads/", status=403)


def test_build_registry_with_given_storage() -> None:
    storage = MemoryStorage()
    assert build_registry(storage=storage).storage is storage


def test_build_registry_names_the_missing_setting() -> None:
    with pytest.raises(ConfigurationError, match="DOCKER_REGISTRY_ROOT"):
        build_registry(root=None, root_setting="DOCKER_REGISTRY_ROOT")


def test_build_registry_refuses_an_auth_without_authorize(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="authorize"):
        build_registry(root=tmp_path, auth=lambda u, p: u)  # type: ignore[arg-type]
