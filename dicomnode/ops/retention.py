"""Retention: delete stored studies after N days or while the disk is above a watermark, oldest first.

A study is never deleted while anything about it is still open: the study itself (instances may still come),
a job pending or running, an export or a notification not yet sent or given up, a worklist item not completed
or canceled. The catalog forgets a study in one transaction (with an audit row saying why), then its files are
removed: a crash in between never leaves rows pointing at missing files, and the tombstone written before the
commit lets the next start-up finish the deletion (receive/reconcile.py) instead of re-indexing the files.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, delete, exists, func, select

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.schema import (
    Export,
    Feedback,
    Instance,
    Job,
    Notification,
    Patient,
    Result,
    Series,
    Study,
    StudyPatient,
    WorkItem,
    WorkItemEvent,
)
from dicomnode.catalog.states import OPEN_WORKITEM, JobState, OutboxState, StudyState
from dicomnode.config.ops import RetentionConfig
from dicomnode.ops import audit
from dicomnode.receive.storage import Storage
from dicomnode.service import Service

log = logging.getLogger(__name__)
_studies, _series, _instances = Study.__table__, Series.__table__, Instance.__table__
_jobs, _results, _exports = Job.__table__, Result.__table__, Export.__table__
_notes, _items, _events = Notification.__table__, WorkItem.__table__, WorkItemEvent.__table__
_UNSENT = (OutboxState.PENDING, OutboxState.SENDING)


@dataclass(frozen=True)
class Doomed:
    study_pk: int
    study_instance_uid: str
    last_received_at: datetime
    size_bytes: int
    reason: str  # "older than N days" or "disk above N%"


def plan(catalog: Engine, storage: Storage, config: RetentionConfig, now: datetime | None = None) -> list[Doomed]:
    """The studies retention would delete now, oldest first."""
    now = now or utcnow()
    with catalog.connect() as conn:
        rows = conn.execute(_deletable()).all()
    doomed: list[Doomed] = []
    cutoff = now - timedelta(days=config.max_age_days) if config.max_age_days else None
    for pk, uid, last, size in rows:
        if cutoff is not None and last < cutoff:
            doomed.append(Doomed(pk, uid, last, int(size or 0), f"older than {config.max_age_days:g} days"))
    if config.disk_high_watermark_percent:
        usage = shutil.disk_usage(storage.root)
        used = usage.used - sum(d.size_bytes for d in doomed)
        if used / usage.total * 100 > config.disk_high_watermark_percent:
            target = config.disk_low_watermark_percent / 100 * usage.total
            chosen = {d.study_pk for d in doomed}
            for pk, uid, last, size in rows:
                if used <= target:
                    break
                if pk in chosen:
                    continue
                doomed.append(
                    Doomed(pk, uid, last, int(size or 0), f"disk above {config.disk_high_watermark_percent:g}%")
                )
                used -= int(size or 0)
    return sorted(doomed, key=lambda d: d.last_received_at)


def apply(catalog: Engine, storage: Storage, doomed: list[Doomed]) -> int:
    """Delete each planned study that is still deletable; the number deleted."""
    deleted = 0
    for d in doomed:
        with catalog.begin() as conn:
            if conn.execute(_deletable().where(_studies.c.id == d.study_pk)).first() is None:
                continue  # something reopened it since the plan
            paths = _forget(conn, d)
            tombstone = storage.write_tombstone(f"study-{d.study_pk}", paths)  # before the commit
        for path in paths:
            storage.absolute(path).unlink(missing_ok=True)
        tombstone.unlink()
        log.info(
            "retention deleted study=%s instances=%d bytes=%d (%s)",
            d.study_instance_uid,
            len(paths),
            d.size_bytes,
            d.reason,
        )
        deleted += 1
    return deleted


def _deletable():  # noqa: ANN202
    """Complete studies with nothing open, oldest first: (id, UID, last received, bytes)."""
    s = _studies.c
    size = (
        select(func.coalesce(func.sum(_instances.c.size_bytes), 0))
        .join(_series, _series.c.id == _instances.c.series_fk)
        .where(_series.c.study_fk == s.id)
        .scalar_subquery()
    )
    open_work = [
        exists().where(_jobs.c.study_fk == s.id, _jobs.c.state.in_((JobState.PENDING, JobState.RUNNING))),
        exists().where(_exports.c.study_fk == s.id, _exports.c.state.in_(_UNSENT)),
        exists().where(_notes.c.study_fk == s.id, _notes.c.state.in_(_UNSENT)),
        exists().where(_items.c.study_fk == s.id, _items.c.state.in_(OPEN_WORKITEM)),
    ]
    return (
        select(s.id, s.study_instance_uid, s.last_received_at, size)
        .where(s.state == StudyState.COMPLETE, *[~w for w in open_work])
        .order_by(s.last_received_at, s.id)
    )


def _forget(conn: Connection, d: Doomed) -> list[str]:
    """Remove the study's rows (children first); returns its instances' storage paths."""
    pk = d.study_pk
    series_ids = select(_series.c.id).where(_series.c.study_fk == pk)
    paths = list(conn.execute(select(_instances.c.path).where(_instances.c.series_fk.in_(series_ids))).scalars())
    audit.record(conn, pk, "retention", "deleted", f"{len(paths)} instances, {d.size_bytes} bytes: {d.reason}")
    patient = conn.execute(select(_studies.c.patient_fk).where(_studies.c.id == pk)).scalar_one()
    item_ids = select(_items.c.id).where(_items.c.study_fk == pk)
    conn.execute(delete(_events).where(_events.c.item_fk.in_(item_ids)))
    conn.execute(delete(Feedback.__table__).where(Feedback.__table__.c.study_fk == pk))
    for table in (_items, _notes, _exports, _results, _jobs, StudyPatient.__table__):
        conn.execute(delete(table).where(table.c.study_fk == pk))
    conn.execute(delete(_instances).where(_instances.c.series_fk.in_(series_ids)))
    conn.execute(delete(_series).where(_series.c.study_fk == pk))
    conn.execute(delete(_studies).where(_studies.c.id == pk))
    if conn.execute(select(_studies.c.id).where(_studies.c.patient_fk == patient).limit(1)).first() is None:
        conn.execute(delete(Patient.__table__).where(Patient.__table__.c.id == patient))
    return paths


class RetentionService(Service):
    """Applies retention every interval_minutes (or, with dry_run, logs what it would delete)."""

    def __init__(self, catalog: Engine, storage: Storage, config: RetentionConfig) -> None:
        super().__init__("retention", interval_s=config.interval_minutes * 60, join_timeout_s=30)
        self._catalog = catalog
        self._storage = storage
        self._config = config

    def run_round(self) -> bool:
        doomed = plan(self._catalog, self._storage, self._config)
        if not self._config.dry_run:
            apply(self._catalog, self._storage, doomed)
            return False
        for d in doomed:
            log.info(
                "retention (dry run) would delete study=%s bytes=%d (%s)", d.study_instance_uid, d.size_bytes, d.reason
            )
        return False
