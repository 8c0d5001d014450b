"""Transport for job ids: Celery over Redis when a broker is configured, else an in-process queue.

Queues carry only `QueuedJob`s; the catalog is the truth. Both order by
clinical priority (0 first), then by arrival.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Protocol

from dicomnode.config.analysis import AnalysisConfig
from dicomnode.config.settings import Settings
from dicomnode.jobs.broker import ANALYZE_TASK, celery_settings
from dicomnode.jobs.lifecycle import QueuedJob

log = logging.getLogger(__name__)
EMBEDDED_WORKER_GROUP = "dicomnode.embedded_worker"


class JobQueue(Protocol):
    def submit(self, job: QueuedJob) -> None:
        """Hand the job to a worker; raise when the transport is unavailable."""

    def close(self) -> None: ...


class CeleryQueue:
    """Publishes `dicomnode.analyze(job_id)` to the model family's queue with the job's priority."""

    def __init__(self, policy: AnalysisConfig) -> None:
        from celery import Celery

        self._app = Celery("dicomnode-node", set_as_current=False)
        self._app.conf.update(celery_settings(policy))
        self._warn_if_redis_evicts(policy.broker_url or "")

    def submit(self, job: QueuedJob) -> None:
        self._app.send_task(ANALYZE_TASK, args=[job.job_id], queue=job.queue, priority=job.priority)

    def close(self) -> None:
        self._app.close()

    def _warn_if_redis_evicts(self, url: str) -> None:
        if not url.startswith(("redis://", "rediss://")):
            return
        try:
            import redis

            policy = redis.Redis.from_url(url, socket_timeout=5).config_get("maxmemory-policy")["maxmemory-policy"]
        except Exception as exc:  # CONFIG may be disabled (managed Redis) or Redis down: publishing will tell
            log.info("could not read Redis maxmemory-policy (%s)", type(exc).__name__)
            return
        if policy != "noeviction":
            log.warning("Redis maxmemory-policy is %s; set noeviction or Redis may drop queued jobs", policy)


class EmbeddedQueue:
    """Runs jobs in threads of this process, through the same task as a Celery worker."""

    def __init__(self, run: Callable[[int], None], threads: int, after: Callable[[], None] = lambda: None) -> None:
        """`after()` runs when a job has finished (the node wakes its worklist watcher: the job's result is
        committed, so the page and the exporter need not wait for the watcher's poll)."""
        self._run = run
        self._after = after
        self._heap: list[tuple[int, int, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closing = False
        self._threads = [threading.Thread(target=self._work, name=f"analysis-{i}", daemon=True) for i in range(threads)]
        for t in self._threads:
            t.start()

    def submit(self, job: QueuedJob) -> None:
        with self._cond:
            heapq.heappush(self._heap, (job.priority, next(self._seq), job.job_id))
            self._cond.notify()

    def close(self) -> None:
        """Stop taking jobs; a job still running is left to the start-up reconciler of the next run."""
        with self._cond:
            self._closing = True
            self._heap.clear()
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout=5)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._heap and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                _, _, job_id = heapq.heappop(self._heap)
            try:
                self._run(job_id)
            except Exception:  # the task records its own errors; this is a bug in it
                log.exception("analysis task crashed job=%d", job_id)
            self._after()


def embedded_runner(settings: Settings) -> Callable[[int], None]:
    """The analysis task, found by entry point so that the node never imports `workers`."""
    found = entry_points(group=EMBEDDED_WORKER_GROUP)
    if not found:
        raise RuntimeError(f"no {EMBEDDED_WORKER_GROUP} entry point: is the dicomnode package installed?")
    start = next(iter(found)).load()
    return start(settings)


def open_queue(settings: Settings, after_job: Callable[[], None] = lambda: None) -> JobQueue:
    """`after_job()`: an embedded job has finished (workers elsewhere are noticed by the watcher's poll)."""
    if settings.analysis.broker_url:
        return CeleryQueue(settings.analysis)
    return EmbeddedQueue(embedded_runner(settings), settings.analysis.embedded_workers, after_job)
