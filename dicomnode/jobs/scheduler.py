"""Publishes due jobs and reaps the runs of dead workers; reconciles the catalog at start-up."""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import Engine

from dicomnode.config.settings import AnalysisConfig
from dicomnode.jobs import lifecycle as jobs
from dicomnode.jobs.queue import JobQueue

log = logging.getLogger(__name__)


class JobScheduler(threading.Thread):
    def __init__(self, catalog: Engine, queue: JobQueue, policy: AnalysisConfig, embedded: bool) -> None:
        super().__init__(name="job-scheduler", daemon=True)
        self._catalog = catalog
        self._queue = queue
        self._policy = policy
        self._embedded = embedded
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._transport_down = False

    def reconcile(self) -> None:
        """Start-up: nothing queued survives for sure, and in embedded mode no run survives at all."""
        with self._catalog.begin() as conn:
            reaped = jobs.reap_dead_runs(conn, self._policy, everything=self._embedded)
            requeued = jobs.forget_queues(conn)
        if reaped or requeued:
            log.warning("reconciled jobs: %d runs of stopped workers, %d queued jobs re-published", reaped, requeued)

    def start(self) -> None:
        self.reconcile()
        super().start()

    def wake(self) -> None:
        """New jobs were committed: publish them now rather than at the next poll."""
        self._wake.set()

    def run(self) -> None:
        next_reap = 0.0
        while not self._stopping.is_set():
            self._wake.clear()  # before the round: a wake during it triggers the next one at once
            try:
                if time.monotonic() >= next_reap:  # a heartbeat cannot go stale faster than this
                    next_reap = time.monotonic() + self._policy.heartbeat_s
                    with self._catalog.begin() as conn:
                        reaped = jobs.reap_dead_runs(conn, self._policy)
                    if reaped:
                        log.warning("re-queued or failed %d jobs whose worker stopped heartbeating", reaped)
                self.publish_due()
            except Exception:
                log.exception("job scheduling round failed; retrying")
            self._wake.wait(self._policy.poll_seconds)

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

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self.is_alive():
            self.join(timeout=10)
        self._queue.close()
