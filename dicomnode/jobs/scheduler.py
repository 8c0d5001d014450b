"""Publishes due jobs and reaps the runs of dead workers; reconciles the catalog at start-up."""

from __future__ import annotations

import logging
import time

from sqlalchemy import Engine

from dicomnode.config.analysis import AnalysisConfig
from dicomnode.jobs import lifecycle as jobs
from dicomnode.jobs.queue import JobQueue
from dicomnode.service import Service

log = logging.getLogger(__name__)


class JobScheduler(Service):
    def __init__(self, catalog: Engine, queue: JobQueue, policy: AnalysisConfig, embedded: bool) -> None:
        super().__init__("job-scheduler", interval_s=policy.poll_seconds)
        self._catalog = catalog
        self._queue = queue
        self._policy = policy
        self._embedded = embedded
        self._transport_down = False
        self._next_reap = 0.0

    def reconcile(self) -> None:
        """Start-up: nothing queued survives for sure, and in embedded mode no run survives at all."""
        with self._catalog.begin() as conn:
            reaped = jobs.reap_dead_runs(conn, self._policy, everything=self._embedded)
            requeued = jobs.forget_queues(conn)
        if reaped or requeued:
            log.warning("reconciled jobs: %d runs of stopped workers, %d queued jobs re-published", reaped, requeued)

    def run_round(self) -> bool:
        """Reap the runs of dead workers (no more often than a heartbeat can go stale), publish due jobs."""
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self._policy.heartbeat_s
            with self._catalog.begin() as conn:
                reaped = jobs.reap_dead_runs(conn, self._policy)
            if reaped:
                log.warning("re-queued or failed %d jobs whose worker stopped heartbeating", reaped)
        self.publish_due()
        return False

    def publish_due(self) -> int:
        published = 0
        with self._catalog.connect() as conn:
            due = jobs.due_unpublished(conn)
        for job in due:
            # Marked first: a fast worker may claim and re-queue the job before a later mark would land.
            with self._catalog.begin() as conn:
                jobs.mark_published(conn, job.job_id)
            try:
                self._queue.submit(job)
            except Exception as exc:
                with self._catalog.begin() as conn:
                    jobs.unmark_published(conn, job.job_id)
                if not self._transport_down:
                    log.error(
                        "cannot publish jobs (%s: %s); they stay pending and are retried", type(exc).__name__, exc
                    )
                self._transport_down = True
                return published
            published += 1
        if published and self._transport_down:
            log.info("publishing jobs again")
            self._transport_down = False
        return published

    def close(self) -> None:
        self._queue.close()
