"""Entry module of a Celery worker process: `celery -A workers.worker worker` (started by `python -m workers`).

Reads the same configuration as the node: the file named by DICOMNODE_CONFIG
plus DICOMNODE_* environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from celery.signals import worker_process_init

from dicomnode.config.settings import load_settings
from dicomnode.jobs.broker import celery_settings
from dicomnode.ops.logs import setup_logging
from workers import runtime
from workers.app import app
from workers.runtime import CONFIG_ENV, FAMILIES_ENV

settings = load_settings(Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
if not settings.analysis.broker_url:
    raise SystemExit("analysis.broker_url is not set: workers need a broker (without one, `dicomnode serve` analyses)")
setup_logging(settings.log.level, settings.log.format)
app.conf.update(celery_settings(settings.analysis))
runtime.configure(runtime.Runtime(settings))

__all__ = ["app"]


@worker_process_init.connect
def _load_models(**_: object) -> None:
    """In the process that runs tasks (the solo worker, or a prefork child; never the forking parent)."""
    rt = runtime.current()
    families = set(filter(None, os.environ.get(FAMILIES_ENV, "").split(","))) or set(rt.registry.families())
    rt.warm_up([n for n in rt.registry.names() if rt.registry.get(n).family in families])
