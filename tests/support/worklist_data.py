"""Worklist test data: studies written straight into a catalog, as ingest and completion would leave them."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import count

from sqlalchemy import Connection, insert, select

from dicomnode.catalog.schema import Patient, Series, Study, WorkItem
from dicomnode.catalog.states import StudyState
from dicomnode.config.worklist import WorklistConfig
from dicomnode.worklist import items

NOW = datetime(2026, 11, 22, 12, 0, 0)
_serial = count(1)


def add_study(
    conn: Connection,
    priority: str | None,
    minutes_ago: float,
    modality: str = "CT",
    description: str = "CT HEAD",
    config: WorklistConfig | None = None,
    now: datetime = NOW,
) -> int:
    """A completed study on the worklist; returns the study's primary key."""
    n = next(_serial)
    arrived = now - timedelta(minutes=minutes_ago)
    patient = conn.execute(
        insert(Patient.__table__).values(patient_id=f"PID{n}", issuer_of_patient_id="", patient_name=f"Test^Patient{n}")
    ).inserted_primary_key[0]
    study = conn.execute(
        insert(Study.__table__).values(
            called_ae="DICOMNODE",
            study_instance_uid=f"1.2.826.0.1.3680043.10.1.{n}",
            patient_fk=patient,
            accession_number=f"ACC{n}",
            study_description=description,
            requested_procedure_priority=priority,
            state=StudyState.COMPLETE,
            first_received_at=arrived,
            last_received_at=arrived,
            completed_at=arrived,
            completion_count=1,
        )
    ).inserted_primary_key[0]
    conn.execute(
        insert(Series.__table__).values(
            study_fk=study, series_instance_uid=f"1.2.826.0.1.3680043.10.2.{n}", modality=modality
        )
    )
    items.enlist(conn, study, config or WorklistConfig(), now)
    return study


def flag(
    label: str, probability: float, urgency: float = 1.0, model: str = "ct-hemorrhage", version: str = "0.2.0"
) -> dict:
    return {
        "label": label,
        "probability": probability,
        "urgency": urgency,
        "model": model,
        "model_version": version,
        "result_uid": f"2.25.{abs(hash((label, model, version)))}",
    }


def workitem_of(conn: Connection, study_pk: int) -> str:
    items_ = WorkItem.__table__
    return conn.execute(select(items_.c.workitem_uid).where(items_.c.study_fk == study_pk)).scalar_one()
