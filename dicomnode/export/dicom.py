"""The export outbox: one row per result instance and destination, armed in the transaction that stores the
result. Its transitions are the shared outbox's (dicomnode/outbox.py); what is DICOM-specific lives here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Export, ExportState, Study
from dicomnode.config.settings import ExportConfig
from dicomnode.export import outbox
from dicomnode.ops import audit

_exports = Export.__table__
_studies = Study.__table__
# Statuses that retrying cannot fix: SOP class not supported, not authorised, data set does not match the SOP
# class, cannot understand. Others (out of resources, processing failure, ...) may pass later.
PERMANENT_STATUSES = frozenset({0x0122, 0x0124, 0xA900}) | frozenset(range(0xC000, 0xD000))


@dataclass(frozen=True)
class Send:
    id: int
    study_pk: int
    sop_instance_uid: str
    path: str
    destination: str
    attempt: int


def enqueue(conn: Connection, study_pk: int, result_uid: str, instances: list[tuple[str, str]],
            destinations: list[str]) -> int:  # fmt: skip
    """Arm a send of each (SOP Instance UID, path) to each destination; a re-run re-arms the same rows."""
    now = utcnow()
    for sop_uid, path in instances:
        for destination in destinations:
            stmt = insert_for(conn.dialect.name, _exports).values(
                study_fk=study_pk, result_uid=result_uid, sop_instance_uid=sop_uid, path=path,
                destination=destination, state=ExportState.PENDING, attempts=0, not_before=now, created_at=now,
            )  # fmt: skip
            rearm = {"state": ExportState.PENDING, "attempts": 0, "not_before": now, "path": path,
                     "last_error": None, "last_status": None, "sent_at": None}  # fmt: skip
            conn.execute(stmt.on_conflict_do_update(index_elements=["sop_instance_uid", "destination"], set_=rearm))
    return len(instances) * len(destinations)


def claim_due(conn: Connection, limit: int = 200) -> list[Send]:
    """Take due pending sends (state sending, attempts + 1), oldest first."""
    c = _exports.c
    columns = [c.id, c.study_fk, c.sop_instance_uid, c.path, c.destination, c.attempts]
    rows = outbox.claim_due(conn, _exports, columns, limit)
    return [Send(*row) for row in rows]


def mark_sent(conn: Connection, send: Send, status: int) -> None:
    outbox.mark_sent(conn, _exports, send.id, status)
    audit.record(conn, send.study_pk, send.destination, "exported", f"{send.sop_instance_uid} (attempt {send.attempt})")


def record_failure(conn: Connection, send: Send, message: str, status: int | None, policy: ExportConfig) -> str:
    """Back off and retry, or give up (dead) after the last attempt or a permanent refusal; the new state."""
    permanent = status is not None and status in PERMANENT_STATUSES
    return outbox.record_failure(conn, _exports, send.id, send.attempt, message, status, permanent, policy)


def retry_dead(conn: Connection, export_id: int) -> bool:
    return outbox.retry_dead(conn, _exports, export_id)


@dataclass(frozen=True)
class ExportSummary:
    id: int
    study_instance_uid: str
    sop_instance_uid: str
    destination: str
    state: str
    attempts: int
    not_before: datetime
    last_error: str | None
    sent_at: datetime | None


def list_exports(conn: Connection, state: str | None = None, limit: int = 500) -> list[ExportSummary]:
    query = (
        select(
            _exports.c.id,
            _studies.c.study_instance_uid,
            _exports.c.sop_instance_uid,
            _exports.c.destination,
            _exports.c.state,
            _exports.c.attempts,
            _exports.c.not_before,
            _exports.c.last_error,
            _exports.c.sent_at,
        )  # fmt: skip
        .join(_studies, _studies.c.id == _exports.c.study_fk)
        .order_by(_exports.c.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(_exports.c.state == state)
    return [ExportSummary(*row) for row in conn.execute(query)]
