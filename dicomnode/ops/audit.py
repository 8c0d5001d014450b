"""The audit trail: who or what touched a study, one row per act, kept after the study itself is deleted.

Acts: received (from which AE, how many instances, at completion), analysed (model, version, weights UID),
failed (the analysis, for good),
exported (what, to where), notified (webhook), claimed / released / completed / canceled (by which reader),
deleted (by retention, and why). Rows carry UIDs, AE titles, model and reader token names, never patient data.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, Row, func, insert, select

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.schema import AuditEvent, Instance, Series, Study

_audit = AuditEvent.__table__
_studies = Study.__table__


def record(
    conn: Connection, study_pk: int, actor: str, action: str, detail: str = "", at: datetime | None = None
) -> None:
    """One act on a study (by primary key); the study's UID and called AE are copied so the row outlives it."""
    study = conn.execute(
        select(_studies.c.study_instance_uid, _studies.c.called_ae).where(_studies.c.id == study_pk)
    ).one()
    conn.execute(
        insert(_audit).values(
            study_instance_uid=study.study_instance_uid,
            called_ae=study.called_ae,
            at=at or utcnow(),
            actor=actor[:128],
            action=action,
            detail=detail[:1000],
        )
    )


def record_received(conn: Connection, study_pk: int) -> None:
    """At completion: one row per sending AE with its instance count and address (new instances only)."""
    series, instances = Series.__table__, Instance.__table__
    already = {r.actor: r for r in _received_rows(conn, study_pk)}
    senders = conn.execute(
        select(instances.c.calling_ae, instances.c.peer_address, func.count(), func.max(instances.c.received_at))
        .join(series, series.c.id == instances.c.series_fk)
        .where(series.c.study_fk == study_pk)
        .group_by(instances.c.calling_ae, instances.c.peer_address)
    ).all()
    for calling_ae, address, count, last in senders:
        detail = f"{count} instances from {calling_ae}@{address}"
        if calling_ae in already and already[calling_ae].detail == detail:
            continue
        record(conn, study_pk, calling_ae, "received", detail, at=last)


def _received_rows(conn: Connection, study_pk: int) -> list[Row]:
    study_uid = conn.execute(select(_studies.c.study_instance_uid).where(_studies.c.id == study_pk)).scalar_one()
    return conn.execute(
        select(_audit)
        .where(_audit.c.study_instance_uid == study_uid, _audit.c.action == "received")
        .order_by(_audit.c.id)
    ).all()


def trail(conn: Connection, study_instance_uid: str | None = None, limit: int = 500) -> list[Row]:
    """Acts, oldest first; for one study, or the most recent `limit` of all."""
    query = select(_audit)
    if study_instance_uid:
        return conn.execute(query.where(_audit.c.study_instance_uid == study_instance_uid).order_by(_audit.c.id)).all()
    rows = conn.execute(query.order_by(_audit.c.id.desc()).limit(limit)).all()
    return rows[::-1]
