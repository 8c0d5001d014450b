"""The Celery app and its one task. Configured by `workers.worker` (Celery workers) or `workers.embedded`."""

from __future__ import annotations

from celery import Celery

from dicomnode.jobs.broker import ANALYZE_TASK
from workers import runtime
from workers.task import run_job

app = Celery("dicomnode", set_as_current=False)


@app.task(name=ANALYZE_TASK, ignore_result=True)
def analyze(job_id: int) -> str:
    return run_job(runtime.current(), job_id)
