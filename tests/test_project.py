"""The promises of the project set-up: README's two commands, CI running them, docs building."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest


def _readme_commands(root: Path) -> list[str]:
    text = (root / "README.rst").read_text()
    setup = text.split("Set up\n------", 1)[1].split("\nEmbedding\n", 1)[0]
    return [line.strip() for line in setup.splitlines() if line.startswith("    pip install")]


def test_readme_shows_exactly_two_setup_commands(repo_root: Path) -> None:
    commands = _readme_commands(repo_root)
    assert len(commands) == 2, commands
    assert "docker-registry-wsgi serve" in commands[0]
    assert "pytest" in commands[1]


def test_ci_runs_the_readme_test_command(repo_root: Path) -> None:
    test_command = _readme_commands(repo_root)[1]
    assert test_command in (repo_root / ".ci" / "run").read_text()


def test_console_script_and_module_agree() -> None:
    """Both entry points of issue 2 exist and describe the same ``serve`` command."""
    out = subprocess.run([sys.executable, "-m", "docker_registry_wsgi", "serve", "--help"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert re.search(r"--root", out) and "--port" in out and "--storage" in out


def test_docs_build_without_warnings(repo_root: Path, tmp_path: Path) -> None:
    pytest.importorskip("sphinx", reason="sphinx is in the test extra; install it to build docs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "-q", "-b", "html", str(repo_root / "docs"),
         str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_is_mypy_strict_clean(repo_root: Path) -> None:
    """The package ships ``py.typed``: ``mypy --strict`` (setup.cfg's settings) finds nothing (issue 13)."""
    pytest.importorskip("mypy", reason="mypy is in the test extra; install it to check types")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "docker_registry_wsgi"],
        capture_output=True, text=True, timeout=600, cwd=repo_root,
    )
    assert result.returncode == 0, result.stdout + result.stderr
