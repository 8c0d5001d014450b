"""Embedded mode: `dicomnode serve` runs the analysis task in its own threads.

Found by the node through the entry point group dicomnode.embedded_worker.
"""

from __future__ import annotations

from collections.abc import Callable

from dicomnode.config import Settings
from workers import runtime
from workers.app import analyze


def start(settings: Settings) -> Callable[[int], None]:
    runtime.configure(runtime.Runtime(settings, processes=settings.analysis.embedded_workers))
    return analyze  # calling a Celery task object runs it here, as a worker would
