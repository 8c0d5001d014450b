"""Entry module of a Celery worker process: `celery -A workers.worker worker` (run by `dicomnode worker`).

Reads the same configuration as the node: the file named by DICOMNODE_CONFIG
plus DICOMNODE_* environment variables.
"""

from __future__ import annotations

import os
from pathlib import Path

from dicomnode.celery_config import celery_settings
from dicomnode.config import load_settings
from dicomnode.logs import setup_logging
from workers import runtime
from workers.app import app

CONFIG_ENV = "DICOMNODE_CONFIG"

settings = load_settings(Path(os.environ[CONFIG_ENV]) if os.environ.get(CONFIG_ENV) else None)
if not settings.analysis.broker_url:
    raise SystemExit("analysis.broker_url is not set: workers need a broker (without one, `dicomnode serve` analyses)")
setup_logging(settings.log.level)
app.conf.update(celery_settings(settings.analysis))
runtime.configure(runtime.Runtime(settings))

__all__ = ["app"]
