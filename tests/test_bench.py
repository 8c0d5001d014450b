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
