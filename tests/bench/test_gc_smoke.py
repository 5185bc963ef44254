"""``bench/gc.py --quick`` runs end to end on the filesystem (that it runs and reports, not speed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_gc_benchmark_quick_run(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "gc.json"
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / "gc.py"), "--quick", "--storage", "filesystem",
         "--json", str(out), "--tmpdir", str(tmp_path)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "peak RSS" in proc.stdout and "p99" in proc.stdout
    results = json.loads(out.read_text())
    assert set(results) >= {"sizes", "environment", "backends"} and results["backends"]
