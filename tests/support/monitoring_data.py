"""Catalog rows as analysis runs leave them (study and worklist item, job, result, input summary, reader
feedback), for the monitoring tests."""

from __future__ import annotations

import itertools
from datetime import datetime

from sqlalchemy import Connection, insert, select

from dicomnode.catalog.schema import Feedback, InputSummary, Job, Result, WorkItem
from dicomnode.catalog.states import JobState
from tests.support.worklist_data import add_study

_serial = itertools.count(1)
TYPICAL = {
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


def add_run(
    conn: Connection,
    at: datetime,
    *,
    positive: bool = False,
    state: JobState = JobState.DONE,
    features: dict | None = None,
    model: str = "ct-hemorrhage",
    version: str = "0.2.0",
) -> int:
    """One completed study analysed (or failed, or refused) at `at`; the study's primary key."""
    n = next(_serial)
    study = add_study(conn, "ROUTINE", 0, now=at)
    done = state == JobState.DONE
    job = conn.execute(
        insert(Job.__table__).values(
            study_fk=study,
            model=model,
            queue="ct",
            priority=6,
            series_uids=[],
            destinations=[],
            rules=["ct"],
            state=state,
            generation=1,
            attempts=1,
            created_at=at,
            not_before=at,
            finished_at=at,
            model_version=version if done else None,
            timings={"queued_s": 0.5, "total_s": 3.0 + n % 5} if done else None,
        )
    ).inserted_primary_key[0]
    if done:
        probability = 0.9 if positive else 0.0
        conn.execute(
            insert(Result.__table__).values(
                result_uid=f"2.25.{900000 + n}",
                study_fk=study,
                job_fk=job,
                model=model,
                model_version=version,
                model_uid="2.25.1",
                findings=[{"label": "bleed", "probability": probability}] if positive else [],
                max_probability=probability,
                created_at=at,
                updated_at=at,
            )
        )
        conn.execute(
            insert(InputSummary.__table__).values(
                job_fk=job,
                study_fk=study,
                model=model,
                model_version=version,
                at=at,
                features={**TYPICAL, **(features or {})},
            )
        )
    return study


def add_feedback(
    conn: Connection, study: int, verdict: str, at: datetime, model: str = "ct-hemorrhage", version: str = "0.2.0"
) -> None:
    item = conn.execute(select(WorkItem.id).where(WorkItem.study_fk == study)).scalar_one()
    conn.execute(
        insert(Feedback.__table__).values(
            item_fk=item,
            study_fk=study,
            result_uid=f"2.25.{study}",
            label="bleed",
            model=model,
            model_version=version,
            verdict=verdict,
            reader="reader1",
            at=at,
        )
    )
