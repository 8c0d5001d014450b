"""Embedded mode: `dicomnode serve` runs the analysis task in its own threads.

Found by the node through the entry point group dicomnode.embedded_worker.
"""

from __future__ import annotations

from collections.abc import Callable

from dicomnode.config.settings import Settings
from workers import runtime
from workers.app import analyze
from workers.arena import share_main_arena


def start(settings: Settings) -> Callable[[int], None]:
    share_main_arena()  # before the analysis threads exist: they allocate as fast as the main thread
    rt = runtime.Runtime(settings, processes=settings.analysis.embedded_workers)
    runtime.configure(rt)
    rt.warm_up(sorted({model for rule in settings.routing.rules for model in rule.models}))
    return analyze  # calling a Celery task object runs it here, as a worker would
