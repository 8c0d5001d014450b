"""Harness for the analysis pipeline: a real redis-server, real `dicomnode worker` processes, catalog reads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from dicomnode.catalog.schema import Job, Result, Study
from tests.support.helpers import CHILD_ENV, free_port, require_tool, wait_for

_jobs = Job.__table__
_results = Result.__table__
_studies = Study.__table__


class RedisServer:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def start(self) -> str:
        self.dir.mkdir(parents=True, exist_ok=True)
        args = [
            require_tool("redis-server"),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.dir),
            "--save",
            "",
            "--appendonly",
            "no",
            "--maxmemory-policy",
            "noeviction",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis(port=self.port)
        wait_for(lambda: _pings(client), timeout=10)
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def _pings(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@dataclass
class WorkerProcess:
    """A `dicomnode worker` (Celery, pool solo) in its own session so that a kill takes all of it."""

    log_path: Path
    config: Path
    args: tuple[str, ...]
    env: dict[str, str]
    proc: subprocess.Popen | None = field(default=None, init=False)

    def start(self, timeout: float = 60) -> WorkerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnode", "worker", "--config", str(self.config), *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**CHILD_ENV, **self.env},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if " ready." in self.log():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not become ready:\n{self.log()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the whole worker: no warm shutdown, no acknowledgement, nothing cleaned up."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)


def rule(name: str, models: list[str], **match: Any) -> dict[str, Any]:
    return {"name": name, "models": models, "match": match}


def analysis_overrides(redis_url: str | None = None, rules: list[dict] | None = None, **analysis: Any) -> dict:
    """node_sections overrides for an analysing node: fast heartbeats, short backoff, the test plugins."""
    settings = {
        "heartbeat_s": 0.3,
        "heartbeat_timeout_s": 2,
        "retry_backoff_s": 0.3,
        "poll_seconds": 0.2,
        "model_plugins": ["tests.support.plugin_models:SPECS"],
        "torch_threads": 1,
        **analysis,
    }
    if redis_url:
        settings["broker_url"] = redis_url
    return {
        "analysis": settings,
        "routing": {"rules": rules if rules is not None else [rule("ct", ["standin-hyperdense"], modality=["CT"])]},
        "assembly": {"study_quiet_seconds": 1, "poll_seconds": 0.2},
    }


def job_rows(catalog: Engine) -> list[Any]:
    with catalog.connect() as conn:
        return conn.execute(
            select(_jobs, _studies.c.study_instance_uid)
            .join(_studies, _studies.c.id == _jobs.c.study_fk)
            .order_by(_jobs.c.id)
        ).all()


def result_rows(catalog: Engine) -> list[Any]:
    with catalog.connect() as conn:
        return conn.execute(select(_results).order_by(_results.c.id)).all()


def wait_jobs(catalog: Engine, count: int, states: set[str], timeout: float = 60) -> list[Any]:
    """Wait until exactly `count` jobs exist and all are in `states`."""

    def settled() -> list[Any] | None:
        rows = job_rows(catalog)
        return rows if len(rows) == count and all(r.state in states for r in rows) else None

    return wait_for(settled, timeout=timeout, interval=0.2)
