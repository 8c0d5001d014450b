"""The ingest benchmark runs end to end (tiny series, one run), so `make bench` cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ingest_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ingest.py"), "--runs", "1", "--slices", "3", "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["instances"] == 3
    for receiver in ("storescp", "pynetdicom-durable", "dicomnode"):
        assert results[receiver]["median_s"] > 0
    assert results["storescp"]["vs_storescp"] == 1.0


def test_jobs_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "jobs.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "jobs.py"), "--studies", "4", "--slices", "4", "--size", "64",
         "--probes", "2", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    for mode in ("direct", "embedded", "redis-1", "redis-2"):
        assert results[mode]["jobs_per_s"] > 0
    assert results["direct"]["vs_direct"] == 1.0
    assert results["embedded"]["queue_overhead_ms"] >= 0 and results["redis-1"]["queue_overhead_ms"] >= 0


def test_inference_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "models.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "inference.py"), "--runs", "1", "--slices", "40", "--size", "128",
         "--xr", "512", "--json", str(out)],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    for name in ("ct-hemorrhage@cpu", "cxr-pneumothorax@cpu"):
        assert results[name]["total_s"] > 0 and results[name]["vs_pydicom_stack"] > 0


def test_results_benchmark_smoke(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    r = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "results.py"), "--runs", "1", "--slices", "40", "--size", "128",
         "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["encode_s"] > 0 and results["deliver_s"] > 0 and results["storescu_s"] > 0
