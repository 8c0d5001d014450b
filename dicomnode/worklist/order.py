"""The worklist order in SQL: the same order as scoring.rank(), computed by the catalog when read.

score = class weight + ai_weight * ai_urgency + aging * minutes waited. Every open item ages at the same rate,
so the order of items that are not overdue is the order of the time-free part
`class weight + ai_weight * ai_urgency - aging * arrival minutes`; overdue items (past arrival + max wait) come
first, earliest deadline first. No stored rank can go stale, and a policy change applies at the next read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Select, and_, case, exists, func, literal, or_, select

from dicomnode.catalog.db import posix_seconds
from dicomnode.catalog.schema import Patient, Study, StudyPatient, WorkItem
from dicomnode.catalog.states import OPEN_WORKITEM
from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist import ai_status, scoring

Order = Literal["urgency", "arrival"]
_items = ITEMS = WorkItem.__table__
_studies = Study.__table__
_patients = Patient.__table__
_study_patients = STUDY_PATIENTS = StudyPatient.__table__
PATIENTS = _patients
_NEVER = 1e15  # seconds: a class without a maximum wait is never overdue


@dataclass(frozen=True)
class Filters:
    modality: str | None = None
    states: tuple[str, ...] = OPEN_WORKITEM
    flagged: bool | None = None  # True: only AI-flagged; False: only not flagged
    accession_number: str | None = None
    workitem_uid: str | None = None
    priorities: tuple[str, ...] | None = None  # PriorityClass names
    ai_status: str | None = None  # an AIStatus value
    search: str | None = None  # patient name words, patient ID, accession number or study date


def _deadline(policy: scoring.ScoringPolicy) -> ColumnElement[float]:
    waits = {cls.name: policy.max_wait(cls) * 60 for cls in PriorityClass}
    waits = {name: (s if s != float("inf") else _NEVER) for name, s in waits.items()}
    return _items.c.arrived_s + case(waits, value=_items.c.priority, else_=_NEVER)


def _time_free_score(policy: scoring.ScoringPolicy) -> ColumnElement[float]:
    weights = {cls.name: policy.weight(cls) for cls in PriorityClass}
    return (
        case(weights, value=_items.c.priority, else_=0.0)
        + policy.ai_weight * _items.c.ai_urgency
        - (policy.aging_per_minute / 60) * _items.c.arrived_s
    )


def sort_keys(policy: scoring.ScoringPolicy, now_s: float, order: Order) -> list[ColumnElement[Any]]:
    if order == "arrival":
        return [_items.c.arrived_s, _items.c.id]
    deadline = _deadline(policy)
    overdue = deadline <= now_s
    return [
        case((overdue, 0), else_=1),
        case((overdue, deadline), else_=0.0),
        _time_free_score(policy).desc(),
        _items.c.arrived_s,
        _items.c.id,
    ]


def ranked(
    policy: scoring.ScoringPolicy, now: datetime, order: Order = "urgency", filters: Filters = Filters()
) -> Select:
    """Items with their rank among all open items (1 is read first; closed items have no rank), filtered.

    Columns: every worklist_items column, rank, total (after filtering), and the study's identifying fields.
    """
    now_s = posix_seconds(now)
    is_open = _items.c.state.in_(OPEN_WORKITEM)
    rank = case((is_open, func.row_number().over(partition_by=is_open, order_by=sort_keys(policy, now_s, order))))
    inner = select(_items, rank.label("rank")).subquery()
    query = (
        select(inner, func.count().over().label("total"), *_shown())
        .join(_studies, _studies.c.id == inner.c.study_fk)
        .join(_patients, _patients.c.id == _studies.c.patient_fk)
        .outerjoin(_study_patients, _study_patients.c.study_fk == _studies.c.id)
        .where(inner.c.state.in_(filters.states))
    )
    if filters.modality:
        separated = literal("/") + inner.c.modalities + literal("/")
        query = query.where(separated.contains(f"/{filters.modality.strip().upper()}/"))
    if filters.flagged is not None:
        query = query.where(inner.c.ai_urgency > 0 if filters.flagged else inner.c.ai_urgency <= 0)
    if filters.accession_number:
        query = query.where(_studies.c.accession_number == filters.accession_number)
    if filters.priorities is not None:
        query = query.where(inner.c.priority.in_(filters.priorities))
    if filters.workitem_uid:
        query = query.where(inner.c.workitem_uid == filters.workitem_uid)
    if filters.ai_status:
        query = query.where(ai_status.status_of(_studies.c.id) == filters.ai_status)
    if filters.search:
        query = query.where(search_condition(filters.search))
    # closed items (no rank) after the open ones, most recently closed first
    return query.order_by(inner.c.rank.is_(None), inner.c.rank, inner.c.closed_at.desc(), inner.c.id)


def ranked_ids(policy: scoring.ScoringPolicy, now: datetime, order: Order = "urgency") -> Select:
    """The open items' light columns in reading order, with rank and the moment each becomes overdue."""
    keys = sort_keys(policy, posix_seconds(now), order)
    return (
        select(
            _items.c.id,
            _items.c.state,
            _items.c.priority,
            _items.c.modalities,
            _items.c.ai_urgency,
            _deadline(policy).label("deadline_s"),
            ai_status.status_of(_items.c.study_fk).label("ai_status"),
            func.row_number().over(order_by=keys).label("rank"),
        )
        .where(_items.c.state.in_(OPEN_WORKITEM))
        .order_by("rank")
    )


def detail_query() -> Select:
    """Every column a client is shown of an item (filter it by id)."""
    return (
        select(_items, *_shown())
        .join(_studies, _studies.c.id == _items.c.study_fk)
        .join(_patients, _patients.c.id == _studies.c.patient_fk)
        .outerjoin(_study_patients, _study_patients.c.study_fk == _studies.c.id)
    )


def _shown() -> tuple[ColumnElement[Any], ...]:
    """The study's and patient's columns a client sees with an item: the patient as the study's own instances name
    it (studies received before study_patients existed fall back to the shared patient row)."""
    own = _study_patients.c
    return (
        _studies.c.study_instance_uid,
        _studies.c.accession_number,
        _studies.c.study_description,
        _studies.c.requested_procedure_priority,
        func.coalesce(own.patient_name, _patients.c.patient_name).label("patient_name"),
        func.coalesce(own.patient_id, _patients.c.patient_id).label("patient_id"),
        func.coalesce(own.birth_date, _patients.c.birth_date).label("patient_birth_date"),
        func.coalesce(own.sex, _patients.c.sex).label("patient_sex"),
        _identity_conflict().label("identity_conflict"),
        ai_status.status_of(_studies.c.id).label("ai_status"),
    )


def search_condition(text: str) -> ColumnElement[bool]:
    """A study a reader is looking for: every word in the patient's name, or the exact patient ID or accession
    number, or the study date (YYYY-MM-DD or YYYYMMDD). For queries joined with studies, patients and
    study_patients."""
    name = func.coalesce(_study_patients.c.patient_name, _patients.c.patient_name, "")
    patient_id = func.coalesce(_study_patients.c.patient_id, _patients.c.patient_id)
    words = [w for w in text.replace("^", " ").split() if w]
    exact = text.strip()
    date = exact.replace("-", "")
    return or_(
        and_(*[name.ilike(f"%{w}%") for w in words]) if words else literal(False),
        patient_id == exact,
        _studies.c.accession_number == exact,
        _studies.c.study_date == date,
    )


def _identity_conflict() -> ColumnElement[bool]:
    """Another study names the same PatientID (and issuer) with a different name or birth date."""
    own, other = _study_patients.c, _study_patients.alias("other_study").c

    def differs(column: str) -> ColumnElement[bool]:
        return and_(own[column].is_not(None), other[column].is_not(None), own[column] != other[column])

    return exists().where(
        other.patient_id == own.patient_id,
        other.issuer_of_patient_id == own.issuer_of_patient_id,
        other.study_fk != own.study_fk,
        or_(differs("patient_name"), differs("birth_date")),
    )


def rank_of(conn: Connection, item_id: int, policy: scoring.ScoringPolicy, now: datetime) -> int | None:
    """The item's current rank, None when it is not open."""
    sub = ranked_ids(policy, now).subquery()
    return conn.execute(select(sub.c.rank).where(sub.c.id == item_id)).scalar()
