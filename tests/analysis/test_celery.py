"""Distributed mode: the node publishes to a real Redis, real `dicomnode worker` (Celery) processes analyse."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from celery import Celery

from dicomnode.catalog.db import open_catalog
from dicomnode.jobs.broker import ANALYZE_TASK
from dicomnode.routing.priority import PriorityClass
from tests.support.dicom_files import series
from tests.support.helpers import CHILD_ENV, free_port, storescu, wait_for
from tests.support.pipeline import RedisServer, analysis_overrides, job_rows, result_rows, rule, wait_jobs


def test_worker_process_analyses_what_the_node_publishes(start_node, start_worker, redis_url, tmp_path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides(redis_url))
    worker = start_worker(node)
    _, files = series(tmp_path, 10, lesion_hu=80)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"done"}, timeout=90)
    assert job.worker.endswith(f":{worker.pid}"), "the worker process ran it, not the node"
    assert job.queue == "dicomnode.ct" and job.attempts == 1
    [result] = result_rows(catalog)
    assert result.findings and result.findings[0]["probability"] > 0.9
    log = worker.log()
    assert log.index("loaded model standin-hyperdense") < log.index("job start"), "models load at worker start"
    assert "job done" in log


def test_worker_killed_mid_job_job_completes_exactly_once_after_restart(
    start_node,
    start_worker,
    redis_url,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    started = tmp_path / "slow-started"
    env = {"SLOW_MODEL_STARTED": str(started), "SLOW_MODEL_SECONDS": "2"}
    node = start_node(**analysis_overrides(redis_url, rules=[rule("ct", ["slow"], modality=["CT"])]))
    first = start_worker(node, env=env)
    _, files = series(tmp_path, 4)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    wait_for(started.exists, timeout=60)
    first.kill()  # SIGKILL mid-job: no acknowledgement, no catalog update
    [job] = job_rows(catalog)
    assert job.state == "running" and job.worker.endswith(f":{first.pid}")

    second = start_worker(node, env=env)
    [job] = wait_jobs(catalog, 1, {"done"}, timeout=60)
    assert job.attempts == 2 and job.worker.endswith(f":{second.pid}")
    [result] = result_rows(catalog)
    assert result.run_count == 1, "the result was written exactly once"
    assert "re-queued or failed 1 jobs whose worker stopped heartbeating" in node.log()

    # Redis would redeliver the killed run's message after the visibility timeout: a duplicate does nothing.
    producer = Celery(broker=redis_url, set_as_current=False)
    producer.send_task(ANALYZE_TASK, args=[job.id], queue=job.queue, priority=job.priority)
    wait_for(lambda: f"job {job.id} not claimable" in second.log(), timeout=30)
    [again] = job_rows(catalog)
    assert (again.state, again.attempts, again.finished_at) == ("done", 2, job.finished_at)
    assert result_rows(catalog)[0].run_count == 1


def test_backlog_is_served_by_clinical_priority(start_node, start_worker, redis_url, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides(redis_url))
    catalog = open_catalog(node.catalog_url)
    order = ["ROUTINE", "LOW", "ROUTINE", "HIGH", "ROUTINE", "STAT"]
    for i, priority in enumerate(order):
        _, files = series(tmp_path / str(i), 3, priority=priority)
        assert storescu(node, files).returncode == 0
    # No worker yet: the backlog builds up on the queue.
    rows = wait_jobs(catalog, len(order), {"pending"}, timeout=60)
    wait_for(lambda: all(r.enqueued_at is not None for r in job_rows(catalog)), timeout=30)
    assert [r.priority for r in rows] == [PriorityClass[p].value for p in order]

    start_worker(node)
    rows = wait_jobs(catalog, len(order), {"done"}, timeout=120)
    served = [PriorityClass(r.priority).name for r in sorted(rows, key=lambda r: r.started_at)]
    assert served == ["STAT", "HIGH", "ROUTINE", "ROUTINE", "ROUTINE", "LOW"]


def test_broker_down_keeps_jobs_pending_and_publishes_them_when_it_returns(start_node, start_worker, tmp_path) -> None:  # noqa: ANN001
    redis = RedisServer(tmp_path / "redis")
    redis.port = free_port()
    url = f"redis://127.0.0.1:{redis.port}/0"
    node = start_node(**analysis_overrides(url))  # Redis is not running yet
    _, files = series(tmp_path, 3)
    assert storescu(node, files).returncode == 0, "ingest does not depend on the broker"
    catalog = open_catalog(node.catalog_url)
    wait_for(lambda: "cannot publish jobs" in node.log(), timeout=60)
    [job] = job_rows(catalog)
    assert job.state == "pending" and job.attempts == 0  # each poll tries again; nothing is dropped
    assert node.alive()

    redis.start()
    try:
        start_worker(node)
        wait_jobs(catalog, 1, {"done"}, timeout=90)
        assert "publishing jobs again" in node.log()
    finally:
        redis.stop()


def test_worker_without_a_broker_refuses_to_start(node) -> None:  # noqa: ANN001
    r = subprocess.run(
        [sys.executable, "-m", "dicomnode", "worker", "--config", str(node.workdir / "dicomnode.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
        check=False,
    )
    assert r.returncode == 2 and "broker_url is not set" in r.stderr


def test_prefork_worker_runs_jobs_in_its_child_and_the_parent_never_loads_torch(
    start_node,
    start_worker,
    redis_url,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    node = start_node(**analysis_overrides(redis_url))
    worker = start_worker(node, "--pool", "prefork")
    _, files = series(tmp_path, 6, lesion_hu=80)
    assert storescu(node, files).returncode == 0
    [job] = wait_jobs(open_catalog(node.catalog_url), 1, {"done"}, timeout=90)
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    assert job.worker.rsplit(":", 1)[1] in children, "the pool child ran the job"
    parent_maps = Path(f"/proc/{worker.pid}/maps").read_text()
    assert "libtorch" not in parent_maps, "the forking parent must not load torch (nor, so, CUDA)"
