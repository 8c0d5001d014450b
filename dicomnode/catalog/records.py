"""Catalog writes and reads for received instances and their studies."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select

from dicomnode.catalog.db import insert_for
from dicomnode.catalog.schema import Instance, Order, Patient, Series, Study, StudyPatient
from dicomnode.catalog.states import StudyState
from dicomnode.receive.header import InstanceHeader

_patients = Patient.__table__
_studies = Study.__table__
_series = Series.__table__
_instances = Instance.__table__
_study_patients = StudyPatient.__table__
_orders = Order.__table__


@dataclass(frozen=True)
class Receipt:
    """How an instance reached the node."""

    calling_ae: str
    called_ae: str
    peer_address: str
    transfer_syntax_uid: str
    received_at: datetime


_EXISTS = select(_instances.c.id).where(_instances.c.sop_instance_uid == bindparam("sop"))


def instance_exists(conn: Connection, sop_instance_uid: str) -> bool:
    return conn.execute(_EXISTS, {"sop": sop_instance_uid}).first() is not None


def record_instance(conn: Connection, header: InstanceHeader, receipt: Receipt, path: str, size: int) -> None:
    """Upsert patient, study, series and instance; (re)open the study. Caller commits."""
    stmts = _statements(conn.dialect.name)
    h, r = header, receipt
    patient_fk = conn.execute(
        stmts.patient,
        {
            "patient_id": h.patient_id,
            "issuer_of_patient_id": h.issuer_of_patient_id,
            "patient_name": h.patient_name,
            "birth_date": h.birth_date,
            "sex": h.sex,
        },
    ).scalar_one()
    study_fk = conn.execute(
        stmts.study,
        {
            "called_ae": r.called_ae,
            "study_instance_uid": h.study_instance_uid,
            "patient_fk": patient_fk,
            "state": StudyState.OPEN,
            "first_received_at": r.received_at,
            "last_received_at": r.received_at,
            "completion_count": 0,
            "accession_number": h.accession_number,
            "study_date": h.study_date,
            "study_description": h.study_description,
            "requested_procedure_priority": h.requested_procedure_priority,
            "reason_for_requested_procedure": h.reason_for_requested_procedure,
        },
    ).scalar_one()
    conn.execute(
        stmts.study_patient,
        {
            "study_fk": study_fk,
            "patient_id": h.patient_id,
            "issuer_of_patient_id": h.issuer_of_patient_id,
            "patient_name": h.patient_name,
            "birth_date": h.birth_date,
            "sex": h.sex,
        },
    )
    series_fk = conn.execute(
        stmts.series,
        {
            "study_fk": study_fk,
            "series_instance_uid": h.series_instance_uid,
            "modality": h.modality,
            "body_part_examined": h.body_part_examined,
            "series_description": h.series_description,
            "series_number": h.series_number,
            "station_name": h.station_name,
        },
    ).scalar_one()
    conn.execute(
        stmts.instance,
        {
            "series_fk": series_fk,
            "sop_instance_uid": h.sop_instance_uid,
            "sop_class_uid": h.sop_class_uid,
            "transfer_syntax_uid": r.transfer_syntax_uid,
            "instance_number": h.instance_number,
            "path": path,
            "size_bytes": size,
            "calling_ae": r.calling_ae,
            "called_ae": r.called_ae,
            "peer_address": r.peer_address,
            "received_at": r.received_at,
        },
    )


def record_derived_instance(conn: Connection, study_pk: int, series: dict[str, Any], instance: dict[str, Any]) -> None:
    """Index an instance we made (an AI result) in an existing study: series and instance only, so the study
    keeps its state. Caller commits."""
    stmts = _statements(conn.dialect.name)
    series_fk = conn.execute(
        stmts.series, {"study_fk": study_pk, "body_part_examined": None, "station_name": None, **series}
    ).scalar_one()
    conn.execute(stmts.instance, {"series_fk": series_fk, **instance})


@dataclass(frozen=True)
class _Upserts:
    patient: Any
    study: Any
    study_patient: Any
    series: Any
    instance: Any


@functools.cache
def _statements(dialect: str) -> _Upserts:
    """The upserts, built once per dialect: building them costs more than running them."""

    def keep_known(stmt: Any, table: Any, columns: tuple[str, ...]) -> dict[str, Any]:
        # A later instance that lacks an attribute does not erase what an earlier one gave.
        return {k: func.coalesce(stmt.excluded[k], table.c[k]) for k in columns}

    patient = insert_for(dialect, _patients)
    patient = patient.on_conflict_do_update(
        index_elements=["patient_id", "issuer_of_patient_id"],
        set_=keep_known(patient, _patients, ("patient_name", "birth_date", "sex")),
    ).returning(_patients.c.id)

    study_patient = insert_for(dialect, _study_patients)
    first_known = {  # the study's first instance that carried a value keeps it
        k: func.coalesce(_study_patients.c[k], study_patient.excluded[k]) for k in ("patient_name", "birth_date", "sex")
    }
    study_patient = study_patient.on_conflict_do_update(index_elements=["study_fk"], set_=first_known)

    study = insert_for(dialect, _studies)
    latest = func.max if dialect == "sqlite" else func.greatest
    study = study.on_conflict_do_update(
        index_elements=["called_ae", "study_instance_uid"],
        set_={
            "state": StudyState.OPEN,
            "last_received_at": latest(_studies.c.last_received_at, study.excluded.last_received_at),
            **keep_known(study, _studies, _STUDY_DESCRIBED),
        },
    ).returning(_studies.c.id)

    series = insert_for(dialect, _series)
    series = series.on_conflict_do_update(
        index_elements=["study_fk", "series_instance_uid"],
        set_=keep_known(series, _series, _SERIES_DESCRIBED),
    ).returning(_series.c.id)

    instance = insert_for(dialect, _instances)
    instance = instance.on_conflict_do_update(
        index_elements=["sop_instance_uid"],
        set_={c.name: instance.excluded[c.name] for c in _instances.c if c.name not in ("id", "sop_instance_uid")},
    )
    return _Upserts(patient, study, study_patient, series, instance)


_STUDY_DESCRIBED = (
    "accession_number",
    "study_date",
    "study_description",
    "requested_procedure_priority",
    "reason_for_requested_procedure",
)
_SERIES_DESCRIBED = ("modality", "body_part_examined", "series_description", "series_number", "station_name")


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
    analysis: str | None  # StudyAnalysis; None while the study is open


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
            _studies.c.analysis,
        )
        .select_from(_studies.outerjoin(_series).outerjoin(_instances))
        .group_by(_studies.c.id)
        .order_by(_studies.c.last_received_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
        modalities = modalities_of(conn, [r[0] for r in rows])
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
            analysis=r[11],
        )
        for r in rows
    ]


def modalities_of(conn: Connection, study_ids: list[int]) -> dict[int, str]:
    rows = conn.execute(
        select(_series.c.study_fk, _series.c.modality)
        .where(_series.c.study_fk.in_(study_ids), _series.c.modality.is_not(None))
        .distinct()
    ).all()
    found: dict[int, set[str]] = {}
    for study_fk, modality in rows:
        found.setdefault(study_fk, set()).add(modality)
    return {k: "/".join(sorted(v)) for k, v in found.items()}


def series_instance_paths(conn: Connection, study_pk: int, series_uids: list[str]) -> dict[str, list[str]]:
    """Storage paths of each listed series' instances (series with no instances map to an empty list)."""
    rows = conn.execute(
        select(_series.c.series_instance_uid, _instances.c.path)
        .join(_instances, _instances.c.series_fk == _series.c.id)
        .where(_series.c.study_fk == study_pk, _series.c.series_instance_uid.in_(series_uids))
        .order_by(_instances.c.id)
    ).all()
    paths: dict[str, list[str]] = {uid: [] for uid in series_uids}
    for uid, path in rows:
        paths[uid].append(path)
    return paths


def requested_priority(conn: Connection, study_pk: int) -> str | None:
    """The study's order priority as Requested Procedure Priority: the RIS order's (HL7, matched by accession
    number) when there is one with a priority, else the study's own header. The one place both are weighed."""
    row = conn.execute(
        select(_studies.c.requested_procedure_priority, _orders.c.priority)
        .outerjoin(_orders, _orders.c.accession_number == _studies.c.accession_number)
        .where(_studies.c.id == study_pk)
    ).one()
    return row[1] or row[0]
