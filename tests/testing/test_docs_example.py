"""docs/testing.rst shows examples/test_flask_registry.py: run it, so the page cannot go stale."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLE = "test_flask_registry.py"


def test_the_documented_example_passes(repo_root: Path) -> None:
    """The file as a user runs it (``python -m pytest`` in ``examples/``): all five tests pass."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", EXAMPLE, "-q", "-p", "no:cacheprovider", "-p", "no:randomly"],
        cwd=repo_root / "examples", capture_output=True, text=True, timeout=240,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo_root), os.environ.get("PYTHONPATH")]))},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in result.stdout, result.stdout[-2000:]


def test_the_docs_include_the_example(repo_root: Path) -> None:
    page = (repo_root / "docs" / "testing.rst").read_text()
    assert f".. literalinclude:: ../examples/{EXAMPLE}" in page
    assert "testing\n" in (repo_root / "docs" / "index.rst").read_text()
