"""The export outbox in the catalog: every transition a send can make, in one place.

pending --claim--> sending --peer accepted--> sent
                      |--peer down, or a failure status worth retrying, attempts left--> pending (after backoff)
                      '--last attempt, or a refusal that retrying cannot fix--> dead --retry by hand--> pending

Rows are created in the transaction that stores the result, so a result is
never without its sends; a node restart takes back rows left `sending`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, select, update

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Export, ExportState, Study
from dicomnode.config import ExportConfig

_exports = Export.__table__
_studies = Study.__table__
# Statuses that retrying cannot fix: SOP class not supported, not authorised, data set does not match the SOP
# class, cannot understand. Others (out of resources, processing failure, ...) may pass later.
PERMANENT_STATUSES = frozenset({0x0122, 0x0124, 0xA900}) | frozenset(range(0xC000, 0xD000))


@dataclass(frozen=True)
class Send:
    id: int
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
    now = utcnow()
    ids = conn.execute(
        select(_exports.c.id)
        .where(_exports.c.state == ExportState.PENDING, _exports.c.not_before <= now)
        .order_by(_exports.c.not_before, _exports.c.id)
        .limit(limit)
    ).scalars().all()  # fmt: skip
    if not ids:
        return []
    rows = conn.execute(
        update(_exports)
        .where(_exports.c.id.in_(ids), _exports.c.state == ExportState.PENDING)
        .values(state=ExportState.SENDING, attempts=_exports.c.attempts + 1)
        .returning(
            _exports.c.id, _exports.c.sop_instance_uid, _exports.c.path, _exports.c.destination, _exports.c.attempts
        )  # fmt: skip
    ).all()
    return [Send(*row) for row in sorted(rows)]


def mark_sent(conn: Connection, send: Send, status: int) -> None:
    conn.execute(update(_exports).where(_exports.c.id == send.id).values(
        state=ExportState.SENT, sent_at=utcnow(), last_status=status, last_error=None))  # fmt: skip


def record_failure(conn: Connection, send: Send, message: str, status: int | None, policy: ExportConfig) -> str:
    """Back off and retry, or give up (dead) after the last attempt or a permanent refusal; the new state."""
    permanent = status is not None and status in PERMANENT_STATUSES
    if permanent or send.attempt >= policy.max_attempts:
        conn.execute(update(_exports).where(_exports.c.id == send.id).values(
            state=ExportState.DEAD, last_error=message, last_status=status))  # fmt: skip
        return ExportState.DEAD
    delay = min(policy.retry_backoff_s * 2 ** (send.attempt - 1), policy.retry_backoff_max_s)
    conn.execute(update(_exports).where(_exports.c.id == send.id).values(
        state=ExportState.PENDING, last_error=message, last_status=status,
        not_before=utcnow() + timedelta(seconds=delay)))  # fmt: skip
    return ExportState.PENDING


def take_back_sending(conn: Connection) -> int:
    """At start-up: sends a crashed node left `sending` go back to pending (the peer may get one twice; the
    SOP Instance UID is the same, so a PACS replaces or ignores it)."""
    return conn.execute(update(_exports).where(_exports.c.state == ExportState.SENDING).values(
        state=ExportState.PENDING)).rowcount  # fmt: skip


def retry_dead(conn: Connection, export_id: int) -> bool:
    result = conn.execute(update(_exports).where(_exports.c.id == export_id, _exports.c.state == ExportState.DEAD)
                          .values(state=ExportState.PENDING, attempts=0, not_before=utcnow()))  # fmt: skip
    return result.rowcount == 1


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
