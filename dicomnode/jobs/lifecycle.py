"""Job state in the catalog: every transition a job can make, in one place.

pending --claim--> running --finish--> done
                      |--error, attempts left--> pending (after backoff)
                      |--permanent error or last attempt--> failed
                      '--heartbeat stale (worker died)--> pending, or failed after the last attempt

Only the holder of the current run token may finish a job, so a run that lost
its claim (worker presumed dead, study re-completed) cannot write over a newer one.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, select, update

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Job, Study
from dicomnode.catalog.states import JobState
from dicomnode.config.analysis import AnalysisConfig
from dicomnode.errors import DicomnodeError

_jobs = Job.__table__
_studies = Study.__table__


@dataclass(frozen=True)
class QueuedJob:
    """What travels through a queue: the job id, never pixels or patient data."""

    job_id: int
    queue: str
    priority: int


@dataclass(frozen=True)
class Claim:
    job_id: int
    token: str
    attempt: int
    model: str
    study_pk: int
    study_instance_uid: str
    series_uids: list[str]
    enqueued_at: datetime | None
    started_at: datetime
    destinations: list[str]  # AE@HOST:PORT the results go to


class LostClaim(DicomnodeError):
    """The job was re-queued or reset while this run worked on it; its result is discarded."""


def queue_for(family: str) -> str:
    return f"dicomnode.{family}"


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def upsert_job(
    conn: Connection,
    *,
    study_pk: int,
    generation: int,
    model: str,
    queue: str,
    priority: int,
    series_uids: list[str],
    destinations: list[str],
    rules: list[str],
) -> None:
    """Create the study's job for `model`, or reset it to pending for a new completion of the study."""
    now = utcnow()
    fresh = {
        "queue": queue,
        "priority": priority,
        "series_uids": series_uids,
        "destinations": destinations,
        "rules": rules,
        "state": JobState.PENDING,
        "generation": generation,
        "attempts": 0,
        "last_error": None,
        "not_before": now,
        "enqueued_at": None,
        "run_token": None,
        "finished_at": None,
    }
    stmt = insert_for(conn.dialect.name, _jobs).values(study_fk=study_pk, model=model, created_at=now, **fresh)
    conn.execute(stmt.on_conflict_do_update(index_elements=["study_fk", "model"], set_=fresh))


def due_unpublished(conn: Connection, limit: int = 500) -> list[QueuedJob]:
    """Pending jobs not on any queue whose backoff has passed, most urgent first."""
    rows = conn.execute(
        select(_jobs.c.id, _jobs.c.queue, _jobs.c.priority)
        .where(_jobs.c.state == JobState.PENDING, _jobs.c.enqueued_at.is_(None), _jobs.c.not_before <= utcnow())
        .order_by(_jobs.c.priority, _jobs.c.id)
        .limit(limit)
    ).all()
    return [QueuedJob(*row) for row in rows]


def mark_published(conn: Connection, job_id: int) -> None:
    conn.execute(
        update(_jobs).where(_jobs.c.id == job_id, _jobs.c.state == JobState.PENDING).values(enqueued_at=utcnow())
    )


def unmark_published(conn: Connection, job_id: int) -> None:
    """Publishing failed: leave the job to be published again."""
    conn.execute(update(_jobs).where(_jobs.c.id == job_id, _jobs.c.state == JobState.PENDING).values(enqueued_at=None))


def claim(conn: Connection, job_id: int, worker: str) -> Claim | None:
    """Take a pending, due job; None when another run has it, it is finished, or it is not due yet.

    A duplicate delivery of a message therefore does nothing.
    """
    now = utcnow()
    token = uuid.uuid4().hex
    row = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == job_id, _jobs.c.state == JobState.PENDING, _jobs.c.not_before <= now)
        .values(
            state=JobState.RUNNING,
            attempts=_jobs.c.attempts + 1,
            run_token=token,
            worker=worker,
            started_at=now,
            heartbeat_at=now,
            last_error=None,
        )
        .returning(
            _jobs.c.attempts,
            _jobs.c.model,
            _jobs.c.study_fk,
            _jobs.c.series_uids,
            _jobs.c.enqueued_at,
            _jobs.c.destinations,
        )
    ).first()
    if row is None:
        return None
    study_uid = conn.execute(select(_studies.c.study_instance_uid).where(_studies.c.id == row.study_fk)).scalar_one()
    return Claim(
        job_id,
        token,
        row.attempts,
        row.model,
        row.study_fk,
        study_uid,
        list(row.series_uids),
        row.enqueued_at,
        now,
        list(row.destinations or []),
    )


def heartbeat(conn: Connection, claim: Claim) -> bool:
    """Refresh the claim; False when it was lost."""
    result = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == claim.job_id, _jobs.c.run_token == claim.token, _jobs.c.state == JobState.RUNNING)
        .values(heartbeat_at=utcnow())
    )
    return result.rowcount == 1


def finish(conn: Connection, claim: Claim, model_version: str, timings: dict[str, float]) -> None:
    """Mark the job done; raise LostClaim (the caller rolls back its result) when the claim was lost."""
    result = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == claim.job_id, _jobs.c.run_token == claim.token, _jobs.c.state == JobState.RUNNING)
        .values(state=JobState.DONE, finished_at=utcnow(), model_version=model_version, timings=timings, run_token=None)
    )
    if result.rowcount != 1:
        raise LostClaim(f"job {claim.job_id} was re-queued while this run worked on it")


def record_error(
    conn: Connection, claim: Claim, error: str, permanent: bool, policy: AnalysisConfig
) -> JobState | None:
    """Retry after a backoff, or fail for good; return the job's new state (None when the claim was lost)."""
    now = utcnow()
    if permanent or claim.attempt >= policy.max_attempts:
        values = {"state": JobState.FAILED, "finished_at": now}
    else:
        delay = timedelta(seconds=policy.retry_delay_s(claim.attempt))
        values = {"state": JobState.PENDING, "not_before": now + delay, "enqueued_at": None}
    result = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == claim.job_id, _jobs.c.run_token == claim.token, _jobs.c.state == JobState.RUNNING)
        .values(last_error=error[:4000], run_token=None, **values)
    )
    return values["state"] if result.rowcount == 1 else None


def record_out_of_scope(conn: Connection, claim: Claim, reason: str) -> bool:
    """The scope gate refused the study: a final state of its own, never retried; False when the claim was lost."""
    result = conn.execute(
        update(_jobs)
        .where(_jobs.c.id == claim.job_id, _jobs.c.run_token == claim.token, _jobs.c.state == JobState.RUNNING)
        .values(state=JobState.OUT_OF_SCOPE, finished_at=utcnow(), last_error=reason[:4000], run_token=None)
    )
    return result.rowcount == 1


def reap_dead_runs(conn: Connection, policy: AnalysisConfig, everything: bool = False) -> int:
    """Re-queue running jobs whose worker stopped heartbeating (all of them when `everything`).

    A job whose worker died on its last attempt fails: a study that kills its
    worker every time must not loop forever.
    """
    now = utcnow()
    stale = _jobs.c.state == JobState.RUNNING
    if not everything:
        stale = and_(stale, _jobs.c.heartbeat_at < now - timedelta(seconds=policy.heartbeat_timeout_s))
    lost = "worker stopped during attempt (no heartbeat)"
    failed = conn.execute(
        update(_jobs)
        .where(stale, _jobs.c.attempts >= policy.max_attempts)
        .values(state=JobState.FAILED, finished_at=now, run_token=None, last_error=f"{lost}; no attempts left")
    ).rowcount
    requeued = conn.execute(
        update(_jobs)
        .where(stale)
        .values(state=JobState.PENDING, enqueued_at=None, not_before=now, run_token=None, last_error=lost)
    ).rowcount
    return failed + requeued


def forget_queues(conn: Connection) -> int:
    """At start-up: a queue may have lost its messages, so every pending job is published again.

    Duplicates are harmless: a claim succeeds once.
    """
    return conn.execute(
        update(_jobs)
        .where(_jobs.c.state == JobState.PENDING, _jobs.c.enqueued_at.is_not(None))
        .values(enqueued_at=None)
    ).rowcount


def retry_failed(conn: Connection, job_id: int) -> bool:
    """Operator action: give a failed (or out-of-scope) job a fresh set of attempts."""
    return (
        conn.execute(
            update(_jobs)
            .where(_jobs.c.id == job_id, _jobs.c.state.in_((JobState.FAILED, JobState.OUT_OF_SCOPE)))
            .values(state=JobState.PENDING, attempts=0, not_before=utcnow(), enqueued_at=None, finished_at=None)
        ).rowcount
        == 1
    )


@dataclass(frozen=True)
class JobSummary:
    id: int
    study_instance_uid: str
    model: str
    state: str
    priority: int
    attempts: int
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    timings: dict | None


def list_jobs(catalog: Engine, state: str | None = None, limit: int = 200) -> list[JobSummary]:
    query = (
        select(
            _jobs.c.id,
            _studies.c.study_instance_uid,
            _jobs.c.model,
            _jobs.c.state,
            _jobs.c.priority,
            _jobs.c.attempts,
            _jobs.c.last_error,
            _jobs.c.created_at,
            _jobs.c.finished_at,
            _jobs.c.timings,
        )
        .join(_studies, _studies.c.id == _jobs.c.study_fk)
        .order_by(_jobs.c.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(_jobs.c.state == state)
    with catalog.connect() as conn:
        return [JobSummary(*row) for row in conn.execute(query)]
