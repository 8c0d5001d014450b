"""Catalog writes and reads for received instances and their studies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, func, select

from dicomnode.catalog.db import upsert
from dicomnode.catalog.schema import Instance, Patient, Series, Study, StudyState
from dicomnode.header import InstanceHeader

_patients = Patient.__table__
_studies = Study.__table__
_series = Series.__table__
_instances = Instance.__table__


@dataclass(frozen=True)
class Receipt:
    """How an instance reached the node."""

    calling_ae: str
    called_ae: str
    peer_address: str
    transfer_syntax_uid: str
    received_at: datetime


def instance_exists(conn: Connection, sop_instance_uid: str) -> bool:
    row = conn.execute(
        select(_instances.c.id).where(_instances.c.sop_instance_uid == sop_instance_uid)
    ).first()
    return row is not None


def record_instance(conn: Connection, header: InstanceHeader, receipt: Receipt, path: str, size: int) -> None:
    """Upsert patient, study, series and instance; (re)open the study. Caller commits."""
    patient_fk = _upsert_patient(conn, header)
    study_fk = _upsert_study(conn, header, receipt, patient_fk)
    series_fk = _upsert_series(conn, header, receipt, study_fk)
    values = {
        "series_fk": series_fk,
        "sop_instance_uid": header.sop_instance_uid,
        "sop_class_uid": header.sop_class_uid,
        "transfer_syntax_uid": receipt.transfer_syntax_uid,
        "instance_number": header.instance_number,
        "path": path,
        "size_bytes": size,
        "calling_ae": receipt.calling_ae,
        "called_ae": receipt.called_ae,
        "peer_address": receipt.peer_address,
        "received_at": receipt.received_at,
    }
    stmt = upsert(conn, _instances).values(values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["sop_instance_uid"], set_=values))


def _upsert_patient(conn: Connection, h: InstanceHeader) -> int:
    values = {
        "patient_id": h.patient_id,
        "issuer_of_patient_id": h.issuer_of_patient_id,
        "patient_name": h.patient_name,
        "birth_date": h.birth_date,
        "sex": h.sex,
    }
    stmt = upsert(conn, _patients).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["patient_id", "issuer_of_patient_id"],
        set_={
            k: func.coalesce(stmt.excluded[k], _patients.c[k]) for k in ("patient_name", "birth_date", "sex")
        },
    ).returning(_patients.c.id)
    return conn.execute(stmt).scalar_one()


def _upsert_study(conn: Connection, h: InstanceHeader, r: Receipt, patient_fk: int) -> int:
    described = {
        "accession_number": h.accession_number,
        "study_date": h.study_date,
        "study_description": h.study_description,
        "requested_procedure_priority": h.requested_procedure_priority,
        "reason_for_requested_procedure": h.reason_for_requested_procedure,
    }
    stmt = upsert(conn, _studies).values(
        called_ae=r.called_ae,
        study_instance_uid=h.study_instance_uid,
        patient_fk=patient_fk,
        state=StudyState.OPEN,
        first_received_at=r.received_at,
        last_received_at=r.received_at,
        completion_count=0,
        **described,
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["called_ae", "study_instance_uid"],
        set_={
            "state": StudyState.OPEN,
            "last_received_at": func.max(_studies.c.last_received_at, stmt.excluded.last_received_at)
            if conn.dialect.name == "sqlite"
            else func.greatest(_studies.c.last_received_at, stmt.excluded.last_received_at),
            **{k: func.coalesce(stmt.excluded[k], _studies.c[k]) for k in described},
        },
    ).returning(_studies.c.id)
    return conn.execute(stmt).scalar_one()


def _upsert_series(conn: Connection, h: InstanceHeader, r: Receipt, study_fk: int) -> int:
    described = {
        "modality": h.modality,
        "body_part_examined": h.body_part_examined,
        "series_description": h.series_description,
        "series_number": h.series_number,
        "station_name": h.station_name,
    }
    stmt = upsert(conn, _series).values(
        study_fk=study_fk, series_instance_uid=h.series_instance_uid, **described
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["study_fk", "series_instance_uid"],
        set_={k: func.coalesce(stmt.excluded[k], _series.c[k]) for k in described},
    ).returning(_series.c.id)
    return conn.execute(stmt).scalar_one()


@dataclass(frozen=True)
class StudySummary:
    called_ae: str
    study_instance_uid: str
    state: str
    modalities: str
    series_count: int
    instance_count: int
    size_bytes: int
    requested_procedure_priority: str | None
    first_received_at: datetime
    last_received_at: datetime
    completed_at: datetime | None


def list_studies(engine: Engine, limit: int = 200) -> list[StudySummary]:
    """Studies, newest activity first, with counts derived from their instances."""
    stmt = (
        select(
            _studies.c.id,
            _studies.c.called_ae,
            _studies.c.study_instance_uid,
            _studies.c.state,
            func.count(func.distinct(_series.c.id)),
            func.count(_instances.c.id),
            func.coalesce(func.sum(_instances.c.size_bytes), 0),
            _studies.c.requested_procedure_priority,
            _studies.c.first_received_at,
            _studies.c.last_received_at,
            _studies.c.completed_at,
        )
        .select_from(_studies.outerjoin(_series).outerjoin(_instances))
        .group_by(_studies.c.id)
        .order_by(_studies.c.last_received_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        modalities = _modalities_of(conn, [r[0] for r in rows])
    return [
        StudySummary(
            called_ae=r[1],
            study_instance_uid=r[2],
            state=r[3],
            modalities=modalities.get(r[0], ""),
            series_count=r[4],
            instance_count=r[5],
            size_bytes=int(r[6]),
            requested_procedure_priority=r[7],
            first_received_at=r[8],
            last_received_at=r[9],
            completed_at=r[10],
        )
        for r in rows
    ]


def _modalities_of(conn: Connection, study_ids: list[int]) -> dict[int, str]:
    rows = conn.execute(
        select(_series.c.study_fk, _series.c.modality)
        .where(_series.c.study_fk.in_(study_ids), _series.c.modality.is_not(None))
        .distinct()
    ).all()
    found: dict[int, set[str]] = {}
    for study_fk, modality in rows:
        found.setdefault(study_fk, set()).add(modality)
    return {k: "/".join(sorted(v)) for k, v in found.items()}
