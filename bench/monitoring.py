"""Monitoring benchmark: the figures of one model version over 100,000 results (all inside the window, the worst
case: every aggregate scans them all), with their jobs, input summaries and 5,000 reader verdicts, on SQLite.
Target: under 200 ms. Peer in the same run: one COUNT(*) of the window's results (the least any figure costs).

Usage: python bench/monitoring.py [--results 100000] [--runs 5] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import Feedback, InputSummary, Job, Patient, Result, Study, WorkItem
from dicomnode.catalog.states import JobState, StudyState, WorkItemState
from dicomnode.config.ops import MonitoringConfig
from dicomnode.ops.monitoring.figures import monitored

FEATURES = {
    "slice_thickness_mm": 5.0,
    "pixel_spacing_mm": 0.45,
    "kvp": 120.0,
    "slices": 32,
    "intensity_mean": 20.0,
    "intensity_std": 400.0,
    "intensity_p05": -1000.0,
    "intensity_p95": 80.0,
    "manufacturer": "SIEMENS",
    "manufacturer_model": "SOMATOM",
    "kernel": "H30s",
    "contrast": "without",
}


def fill(catalog, n: int, rng: random.Random) -> None:  # noqa: ANN001
    now = utcnow()
    at = [now - timedelta(minutes=rng.uniform(1, 6 * 24 * 60)) for _ in range(n)]
    with catalog.begin() as conn:
        conn.execute(insert(Patient.__table__), [{"id": 1, "patient_id": "P", "issuer_of_patient_id": ""}])
        conn.execute(
            insert(Study.__table__),
            [
                {
                    "id": i + 1,
                    "called_ae": "DICOMNODE",
                    "study_instance_uid": f"1.2.3.{i}",
                    "patient_fk": 1,
                    "state": StudyState.COMPLETE,
                    "first_received_at": at[i],
                    "last_received_at": at[i],
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(Job.__table__),
            [
                {
                    "id": i + 1,
                    "study_fk": i + 1,
                    "model": "ct-hemorrhage",
                    "queue": "ct",
                    "priority": 6,
                    "series_uids": [],
                    "destinations": [],
                    "rules": [],
                    "state": JobState.DONE,
                    "generation": 1,
                    "attempts": 1,
                    "created_at": at[i],
                    "not_before": at[i],
                    "finished_at": at[i],
                    "model_version": "0.2.0",
                    "timings": {"queued_s": 0.5, "total_s": rng.uniform(2, 9)},
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(Result.__table__),
            [
                {
                    "result_uid": f"2.25.{i}",
                    "study_fk": i + 1,
                    "job_fk": i + 1,
                    "model": "ct-hemorrhage",
                    "model_version": "0.2.0",
                    "model_uid": "2.25.1",
                    "findings": [],
                    "max_probability": p if (p := rng.random()) > 0.8 else 0.0,
                    "created_at": at[i],
                    "updated_at": at[i],
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(InputSummary.__table__),
            [
                {
                    "job_fk": i + 1,
                    "study_fk": i + 1,
                    "model": "ct-hemorrhage",
                    "model_version": "0.2.0",
                    "at": at[i],
                    "features": {**FEATURES, "intensity_mean": rng.gauss(20, 5)},
                }
                for i in range(n)
            ],
        )
        verdicts = min(5000, n)
        conn.execute(
            insert(WorkItem.__table__),
            [
                {
                    "id": i + 1,
                    "study_fk": i + 1,
                    "workitem_uid": f"2.25.9{i}",
                    "state": WorkItemState.COMPLETED,
                    "priority": "ROUTINE",
                    "arrived_at": at[i],
                    "arrived_s": 0.0,
                    "modalities": "CT",
                    "updated_at": at[i],
                }
                for i in range(verdicts)
            ],
        )
        conn.execute(
            insert(Feedback.__table__),
            [
                {
                    "item_fk": i + 1,
                    "study_fk": i + 1,
                    "result_uid": f"2.25.{i}",
                    "label": "bleed",
                    "model": "ct-hemorrhage",
                    "model_version": "0.2.0",
                    "verdict": rng.choice(["agree", "disagree", "unsure"]),
                    "reader": "r",
                    "at": at[i],
                }
                for i in range(verdicts)
            ],
        )


def timed(fn, runs: int) -> list[float]:  # noqa: ANN001
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--results", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    config = MonitoringConfig()
    with tempfile.TemporaryDirectory() as tmp:
        catalog = open_catalog(f"sqlite:///{Path(tmp) / 'catalog.sqlite'}")
        started = time.perf_counter()
        fill(catalog, args.results, random.Random(5))
        fill_s = time.perf_counter() - started
        now = utcnow()
        with catalog.connect() as conn:
            [figures] = monitored(conn, config, now)  # warm
            ours = timed(lambda: monitored(conn, config, now), args.runs)
            start = now - timedelta(days=config.window_days)
            floor = timed(
                lambda: conn.execute(select(func.count()).where(Result.__table__.c.updated_at >= start)).scalar(),
                args.runs,
            )
        catalog.dispose()
    out = {
        "results": args.results,
        "analysed_in_window": figures["analysed"],
        "fill_s": round(fill_s, 1),
        "figures_median_ms": round(1000 * statistics.median(ours), 1),
        "count_median_ms": round(1000 * statistics.median(floor), 1),
        "vs_count": round(statistics.median(ours) / statistics.median(floor), 1),
        "target_ms": 200,
    }
    print(json.dumps(out))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
