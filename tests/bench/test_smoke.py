"""The benchmark script runs end to end on a tiny workload (``bench/run.py --quick``).

Only that it runs and reports every number is checked, never how fast anything is: speed is
measured by running the script on its own (docs/benchmark.rst). It needs the Go registry, nginx,
wrk and curl; without them it skips locally and fails under CI.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.tools import require_tool

APT = "apt-get install -y docker-registry nginx-light wrk curl"
SMALL_REQUESTS = ("head_blob", "get_manifest", "get_v2", "tags_list", "get_small_blob")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    """One ``--quick`` run: its JSON, its printed report, and the folder it worked in."""
    for tool in ("docker-registry", "nginx", "wrk", "curl"):
        require_tool(tool, APT)
    folder = tmp_path_factory.mktemp("bench")
    work = folder / "work"
    work.mkdir()
    out = folder / "results.json"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / "run.py"), "--quick", "--json", str(out),
         "--tmpdir", str(work)],
        capture_output=True, text=True, timeout=240, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text()), proc.stdout + "\n--- stderr ---\n" + proc.stderr, work


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def test_every_workload_has_a_number_for_both_servers(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    metrics = results["metrics"]
    expected = ["push_monolithic", "push_chunked", "pull", "range", "many", *SMALL_REQUESTS,
                "rss_peak_worker_mib_8", "rss_peak_worker_mib_32",
                "rss_peak_total_mib_8", "rss_peak_total_mib_32"]
    for key in expected:
        for server in ("ours", "distribution"):
            assert _positive(metrics[key]["median"][server]), (key, server, metrics[key])
        assert _positive(metrics[key]["ratio"]), key


def test_no_request_failed(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    for key, metric in results["metrics"].items():
        assert metric["errors"] == {k: 0 for k in metric["errors"]}, (key, metric["errors"])


def test_machine_limits_are_measured(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    limits = results["limits"]
    assert {k.split(",")[0].split(" ")[0] for k in limits} >= {"sha256", "disk", "nginx"}
    assert all(_positive(v["median"]) for v in limits.values()), limits


def test_memory_is_reported_per_worker(quick_run: tuple[dict, str, Path]) -> None:
    """gunicorn runs a master and workers: both must be found in the process tree."""
    results, _, _ = quick_run
    ours = results["rss"]["8 MiB push (ours)"]
    assert ours["master_mib"] and ours["workers_mib"], ours
    assert all(_positive(v) for v in ours["master_mib"] + ours["workers_mib"])


def test_report_prints_table_and_goals(quick_run: tuple[dict, str, Path]) -> None:
    _, stdout, _ = quick_run
    assert "push 8 MiB monolithic" in stdout
    assert "machine limits" in stdout
    assert "goals (docs/benchmark.rst):" in stdout and "issue" not in stdout


def test_temporary_folder_is_removed(quick_run: tuple[dict, str, Path]) -> None:
    """Blobs are large: the script must leave nothing behind."""
    _, _, work = quick_run
    assert list(work.iterdir()) == []


def test_no_server_is_left_running(quick_run: tuple[dict, str, Path]) -> None:
    """Every server the script started ran with its config or data under its temporary folder."""
    _, _, work = quick_run
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(work) in cmdline:
            left.append((pid, cmdline))
    assert left == []


def test_progress_is_printed_as_it_goes(quick_run: tuple[dict, str, Path]) -> None:
    """Each number on stderr as it is measured, with the time since the start."""
    _, output, _ = quick_run
    progress = output.split("\n--- stderr ---\n", 1)[1].splitlines()
    assert progress[0].startswith("[00:00] groups ")
    assert any(line.endswith("] push") for line in progress), progress[:5]
    assert any("push 8 MiB monolithic (POST+PUT): ours " in line and "MB/s (run 1 of 1)" in line
               for line in progress)


def test_results_go_to_a_path_git_ignores_by_default(repo_root: Path) -> None:
    """Without --json, results go to bench/results/, which .gitignore lists."""
    sys.path.insert(0, str(repo_root / "bench"))
    try:
        import run
    finally:
        sys.path.remove(str(repo_root / "bench"))
    assert run.parse_args([]).json is None
    relative = (run.RESULTS / "20260101T000000Z.json").relative_to(repo_root)
    ignored = subprocess.run(["git", "-C", str(repo_root), "check-ignore", "-q", str(relative)])
    assert ignored.returncode == 0, f"{relative} is not ignored by git"
