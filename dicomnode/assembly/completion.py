"""Study assembly: a study is complete when no instance of it arrived for a quiet period."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from dicomnode.assembly.hooks import CompletedStudy, CompletionHook
from dicomnode.assembly.release import StudyKey
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
    """Polls the catalog; works the same after a restart because the catalog holds the state. Studies whose last
    sending association was released by a complete_on_release peer complete after a short grace instead."""

    def __init__(
        self,
        catalog: Engine,
        hook: CompletionHook,
        quiet_seconds: float,
        poll_seconds: float,
        release_grace_seconds: float = 1.0,
    ) -> None:
        super().__init__("assembler", interval_s=min(poll_seconds, quiet_seconds))
        self._catalog = catalog
        self._hook = hook
        self._quiet = quiet_seconds
        self._grace = timedelta(seconds=release_grace_seconds)
        self._released: dict[StudyKey, datetime] = {}
        self._lock = threading.Lock()

    def release_completes(self, study: StudyKey, released_at: datetime) -> None:
        """The study's sender released its association: complete it once the grace has passed, unless more of it
        arrives meanwhile."""
        with self._lock:
            self._released[study] = released_at
        timer = threading.Timer(self._grace.total_seconds(), self.wake)
        timer.daemon = True
        timer.start()

    def run_round(self) -> bool:
        self._complete_released()
        complete_quiet_studies(self._catalog, self._hook, self._quiet)
        return False

    def _complete_released(self) -> None:
        now = utcnow()
        with self._lock:
            due = {k: t for k, t in self._released.items() if t + self._grace <= now}
            for k in due:
                del self._released[k]
        for (called_ae, study_uid), released_at in due.items():
            with self._catalog.connect() as conn:
                pk = conn.execute(
                    select(_studies.c.id).where(
                        _studies.c.called_ae == called_ae, _studies.c.study_instance_uid == study_uid
                    )
                ).scalar()
            # an instance received after the release leaves the study to the quiet period
            if pk is not None and _complete_one(self._catalog, self._hook, pk, cutoff=released_at):
                log.info("study complete on release study=%s", study_uid)
