"""The ingest benchmark runs end to end (tiny series, one run), so `make bench` cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.helpers import REPO_ROOT

ROOT = REPO_ROOT


def run_bench(script: str, out: Path, *args: str, timeout: float = 600) -> dict:
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(out.read_text())


def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "ingest.py", tmp_path / "ingest.json", "--runs", "1", "--slices", "3", "--large-mb", "8", timeout=300
    )
    assert results["instances"] == 3
    for receiver in ("storescp", "pynetdicom-durable", "dicomnode"):
        assert results[receiver]["median_s"] > 0
    assert results["storescp"]["vs_storescp"] == 1.0
    growth = results["large_instance_rss_growth_mb"]
    assert set(growth) == {"dicomnode", "pynetdicom-durable"}
    # The measure sees an instance held in memory (the bare receiver holds all 8 MiB) and does not count the peak
    # the node's start-up left behind (about 40 MB, which it counted until the peak was reset before the send).
    assert growth["pynetdicom-durable"] >= 7 and growth["dicomnode"] < 7, growth
    assert results["concurrent"]["storescp --fork"]["vs_storescp_fork"] == 1.0
    assert results["concurrent"]["dicomnode"]["median_s"] > 0


def test_jobs_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "jobs.py", tmp_path / "jobs.json", "--studies", "4", "--slices", "4", "--size", "64", "--probes", "2"
    )
    for mode in ("direct", "embedded", "redis-1", "redis-2"):
        assert results[mode]["jobs_per_s"] > 0
    assert results["direct"]["vs_direct"] == 1.0
    assert results["embedded"]["queue_overhead_ms"] >= 0 and results["redis-1"]["queue_overhead_ms"] >= 0


def test_inference_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "inference.py", tmp_path / "inference.json", "--runs", "1", "--slices", "40", "--size", "128", "--xr", "512"
    )
    for name in ("ct-hemorrhage@cpu", "cxr-pneumothorax@cpu"):
        assert results[name]["total_s"] > 0 and results[name]["vs_pydicom_stack"] > 0


def test_results_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "results.py", tmp_path / "results.json", "--runs", "1", "--slices", "40", "--size", "128", timeout=300
    )
    assert (
        results["encode_s"] > 0
        and results["encode_all_s"] > 0
        and results["deliver_s"] > 0
        and results["storescu_s"] > 0
    )


def test_worklist_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "worklist.py", tmp_path / "worklist.json", "--items", "300", "--requests", "10", "--trials", "2", timeout=300
    )
    assert results["items"] == 300 and results["list_first_page"]["p99_ms"] > 0
    assert results["result_to_page"]["p50_ms"] > 0 and results["trials"] == 2


def test_triage_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "triage.py", tmp_path / "triage.json", "--runs", "1", "--slices", "40", "--size", "128", timeout=400
    )
    median = results["median"]
    assert results["runs"] == 1 and median["total_s"] >= median["quiet_wait_s"] > 0
    assert {"queueing_s", "load_s", "infer_s", "encode_s", "export_s", "worklist_visible_s"} <= set(median)


def test_simulate_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench("simulate.py", tmp_path / "simulate.json", timeout=300)
    assert results["month_studies"] > 25_000 and results["month_all_policies_s"] > 0
    assert results["day_heap_s"] > 0 and results["day_rank_every_pick_s"] > 0


def test_monitoring_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench("monitoring.py", tmp_path / "monitoring.json", "--results", "2000", "--runs", "2")
    assert results["results"] == results["analysed_in_window"] == 2000
    assert results["figures_median_ms"] > 0 and results["count_median_ms"] > 0


def test_triage_on_release_benchmark_smoke(tmp_path: Path) -> None:
    results = run_bench(
        "triage.py", tmp_path / "t.json", "--on-release", "--runs", "1", "--slices", "32", "--size", "64", timeout=400
    )  # 32 slices over the phantom's 160 mm: 5 mm apart (20 would be 8 mm, wider than the model reads)
    assert results["completion"] == "on release" and results["median"]["total_s"] > 0
    assert results["median"]["quiet_wait_s"] < 2, "completed at release, not after the 2 s quiet period"
