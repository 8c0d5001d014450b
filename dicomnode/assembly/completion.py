"""Study assembly: a study is complete when no instance of it arrived for a quiet period."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from dicomnode.assembly.hooks import CompletedStudy, CompletionHook
from dicomnode.catalog.db import utcnow
from dicomnode.catalog.schema import Study
from dicomnode.catalog.states import StudyState
from dicomnode.service import Service

log = logging.getLogger(__name__)
_studies = Study.__table__


def complete_quiet_studies(
    catalog: Engine, hook: CompletionHook, quiet_seconds: float, now: datetime | None = None
) -> list[CompletedStudy]:
    """Mark every open study quiet since `quiet_seconds` complete and dispatch it.

    Each study commits in its own transaction with its dispatch, so one failing
    dispatch leaves only that study open (it is retried on the next round).
    """
    cutoff = (now or utcnow()) - timedelta(seconds=quiet_seconds)
    with catalog.connect() as conn:
        candidates = (
            conn.execute(
                select(_studies.c.id)
                .where(_studies.c.state == StudyState.OPEN, _studies.c.last_received_at <= cutoff)
                .order_by(_studies.c.last_received_at)
            )
            .scalars()
            .all()
        )
    completed = []
    for study_pk in candidates:
        try:
            done = _complete_one(catalog, hook, study_pk, cutoff)
        except Exception:
            log.exception("dispatch failed; study stays open study_pk=%d", study_pk)
            continue
        if done:
            completed.append(done)
    return completed


def _complete_one(catalog: Engine, hook: CompletionHook, study_pk: int, cutoff: datetime) -> CompletedStudy | None:
    with catalog.begin() as conn:
        # Re-checked in the UPDATE: an instance may have arrived since the SELECT.
        row = conn.execute(
            update(_studies)
            .where(
                _studies.c.id == study_pk,
                _studies.c.state == StudyState.OPEN,
                _studies.c.last_received_at <= cutoff,
            )
            .values(
                state=StudyState.COMPLETE,
                completed_at=utcnow(),
                completion_count=_studies.c.completion_count + 1,
            )
            .returning(_studies.c.called_ae, _studies.c.study_instance_uid, _studies.c.completion_count)
        ).first()
        if row is None:
            return None
        study = CompletedStudy(study_pk, row[0], row[1], row[2])
        hook.study_completed(conn, study)
    hook.after_commit(study)
    return study


class Assembler(Service):
    """Polls the catalog; works the same after a restart because the catalog holds the state."""

    def __init__(self, catalog: Engine, hook: CompletionHook, quiet_seconds: float, poll_seconds: float) -> None:
        super().__init__("assembler", interval_s=min(poll_seconds, quiet_seconds))
        self._catalog = catalog
        self._hook = hook
        self._quiet = quiet_seconds

    def run_round(self) -> bool:
        complete_quiet_studies(self._catalog, self._hook, self._quiet)
        return False
