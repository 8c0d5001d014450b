"""Job state transitions on SQLite and PostgreSQL: claims, tokens, retries, reaping, start-up reconciliation."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.records import Receipt, record_instance
from dicomnode.catalog.schema import Job, Study
from dicomnode.config.analysis import AnalysisConfig
from dicomnode.jobs import lifecycle as jobs
from dicomnode.jobs.queue import EmbeddedQueue
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from tests.support.instances import header

POLICY = AnalysisConfig(
    max_attempts=3, retry_backoff_s=10, retry_backoff_max_s=25, heartbeat_s=1, heartbeat_timeout_s=5
)
_jobs = Job.__table__


def new_job(catalog: Engine, study: str = "1.2.3", priority: int = 6) -> int:
    with catalog.begin() as conn:
        record_instance(conn, header(study + ".9", study), Receipt("CT", "NODE", "127.0.0.1", "1.2", utcnow()), "p", 1)
        pk = conn.execute(select(Study.id).where(Study.study_instance_uid == study)).scalar_one()
        jobs.upsert_job(
            conn,
            study_pk=pk,
            generation=1,
            model="m",
            queue="dicomnode.ct",
            priority=priority,
            series_uids=[study + ".1"],
            destinations=[],
            rules=["r"],
        )
        return conn.execute(select(_jobs.c.id).where(_jobs.c.study_fk == pk)).scalar_one()


def claim(catalog: Engine, job_id: int) -> jobs.Claim | None:
    with catalog.begin() as conn:
        return jobs.claim(conn, job_id, "test:1")


def row(catalog: Engine, job_id: int):  # noqa: ANN201
    with catalog.connect() as conn:
        return conn.execute(_jobs.select().where(_jobs.c.id == job_id)).one()


def test_a_job_is_claimed_once(any_catalog: Engine) -> None:
    job_id = new_job(any_catalog)
    first = claim(any_catalog, job_id)
    assert first is not None and first.attempt == 1 and first.study_instance_uid == "1.2.3"
    assert claim(any_catalog, job_id) is None, "a duplicate message must not start a second run"
    with any_catalog.begin() as conn:
        jobs.finish(conn, first, "1.0", {"total_s": 1.0})
    assert row(any_catalog, job_id).state == "done"
    assert claim(any_catalog, job_id) is None


def test_a_run_that_lost_its_claim_cannot_finish(any_catalog: Engine) -> None:
    job_id = new_job(any_catalog)
    old = claim(any_catalog, job_id)
    with any_catalog.begin() as conn:  # the study was completed again: the job starts over
        jobs.upsert_job(
            conn,
            study_pk=old.study_pk,
            generation=2,
            model="m",
            queue="dicomnode.ct",
            priority=6,
            series_uids=old.series_uids,
            destinations=[],
            rules=["r"],
        )
    new = claim(any_catalog, job_id)
    assert new is not None and new.token != old.token
    with any_catalog.begin() as conn:
        assert not jobs.heartbeat(conn, old)
        with pytest.raises(jobs.LostClaim):
            jobs.finish(conn, old, "1.0", {})
        assert jobs.record_error(conn, old, "late", False, POLICY) is None
    with any_catalog.begin() as conn:
        jobs.finish(conn, new, "1.0", {})
    assert row(any_catalog, job_id).generation == 2


def test_transient_errors_back_off_exponentially_then_fail(any_catalog: Engine) -> None:
    job_id = new_job(any_catalog)
    delays = []
    for attempt in (1, 2, 3):
        c = claim(any_catalog, job_id)
        assert c is not None and c.attempt == attempt
        before = utcnow()
        with any_catalog.begin() as conn:
            state = jobs.record_error(conn, c, f"OSError: {attempt}", permanent=False, policy=POLICY)
        r = row(any_catalog, job_id)
        if attempt < 3:
            assert state == "pending" and r.enqueued_at is None
            delays.append((r.not_before - before).total_seconds())
            assert claim(any_catalog, job_id) is None, "not due before the backoff has passed"
            with any_catalog.begin() as conn:
                conn.execute(update(_jobs).where(_jobs.c.id == job_id).values(not_before=utcnow()))
        else:
            assert state == "failed" and r.last_error == "OSError: 3" and r.finished_at is not None
    assert 9 <= delays[0] <= 11 and 19 <= delays[1] <= 21
    assert POLICY.retry_delay_s(3) == 25, "capped at retry_backoff_max_s"


def test_permanent_errors_fail_at_once_and_an_operator_can_retry(any_catalog: Engine) -> None:
    job_id = new_job(any_catalog)
    c = claim(any_catalog, job_id)
    with any_catalog.begin() as conn:
        assert jobs.record_error(conn, c, "StudyUnreadable: x", permanent=True, policy=POLICY) == "failed"
        assert jobs.retry_failed(conn, job_id)
        assert not jobs.retry_failed(conn, job_id), "only a failed job can be retried"
    r = row(any_catalog, job_id)
    assert (r.state, r.attempts) == ("pending", 0)


def test_runs_of_dead_workers_are_requeued_then_failed_when_out_of_attempts(any_catalog: Engine) -> None:
    job_id = new_job(any_catalog)
    claim(any_catalog, job_id)
    with any_catalog.begin() as conn:
        assert jobs.reap_dead_runs(conn, POLICY) == 0, "a fresh heartbeat is alive"
        stale = utcnow() - timedelta(seconds=POLICY.heartbeat_timeout_s + 1)
        conn.execute(update(_jobs).values(heartbeat_at=stale))
        assert jobs.reap_dead_runs(conn, POLICY) == 1
    r = row(any_catalog, job_id)
    assert (r.state, r.enqueued_at, r.run_token) == ("pending", None, None) and "no heartbeat" in r.last_error

    for _ in range(2):
        claim(any_catalog, job_id)
        with any_catalog.begin() as conn:
            jobs.reap_dead_runs(conn, POLICY, everything=True)  # embedded start-up: no run survived
    r = row(any_catalog, job_id)
    assert (r.state, r.attempts) == ("failed", 3) and "no attempts left" in r.last_error


def test_startup_republishes_pending_jobs_most_urgent_first(any_catalog: Engine) -> None:
    routine = new_job(any_catalog, "1.2.3", PriorityClass.ROUTINE)
    stat = new_job(any_catalog, "1.2.4", PriorityClass.STAT)
    with any_catalog.begin() as conn:
        assert [j.job_id for j in jobs.due_unpublished(conn)] == [stat, routine]
        jobs.mark_published(conn, stat)
        jobs.mark_published(conn, routine)
        assert jobs.due_unpublished(conn) == []
        assert jobs.forget_queues(conn) == 2
        assert [j.job_id for j in jobs.due_unpublished(conn)] == [stat, routine]


def test_order_priority_mapping() -> None:
    assert from_requested_procedure_priority("STAT") is PriorityClass.STAT
    assert from_requested_procedure_priority(" high ") is PriorityClass.HIGH
    assert from_requested_procedure_priority("MEDIUM") is PriorityClass.ROUTINE
    assert from_requested_procedure_priority("LOW") is PriorityClass.LOW
    assert from_requested_procedure_priority(None) is PriorityClass.ROUTINE
    assert from_requested_procedure_priority("URGENT!") is PriorityClass.ROUTINE


def test_embedded_queue_serves_a_backlog_by_priority_then_arrival() -> None:
    started, release = threading.Event(), threading.Event()
    served: list[int] = []
    finished: list[int] = []

    def run(job_id: int) -> None:
        if job_id == 0:
            started.set()
            release.wait(10)  # the first job holds the only thread while the backlog builds
        served.append(job_id)

    queue = EmbeddedQueue(run, threads=1, after=lambda: finished.append(len(served)))
    queue.submit(jobs.QueuedJob(0, "q", PriorityClass.ROUTINE))
    assert started.wait(10)  # the thread has taken job 0 before the others arrive (a state, not a sleep)
    for job_id, priority in [
        (1, PriorityClass.ROUTINE),
        (2, PriorityClass.LOW),
        (3, PriorityClass.STAT),
        (4, PriorityClass.ROUTINE),
        (5, PriorityClass.HIGH),
    ]:
        queue.submit(jobs.QueuedJob(job_id, "q", priority))
    release.set()
    deadline = time.monotonic() + 10
    while len(served) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    queue.close()
    assert served == [0, 3, 5, 1, 4, 2]
    assert finished == [1, 2, 3, 4, 5, 6], "after() runs once each job has finished"
