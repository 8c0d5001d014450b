"""What a worker process holds: settings, catalog engine, storage, and models loaded once, lazily.

Lazily, so that a prefork parent never opens a database connection or touches
CUDA before it forks: the child does both on its first job.
"""

from __future__ import annotations

import gc
import logging
import os
import threading

from sqlalchemy import Engine

from dicomnode.catalog.db import open_catalog
from dicomnode.config.settings import Settings
from dicomnode.receive.storage import Storage
from models.interface import Model
from workers.arena import keep_freed_memory

log = logging.getLogger(__name__)
CONFIG_ENV = "DICOMNODE_CONFIG"  # the config file a worker process reads
FAMILIES_ENV = "DICOMNODE_WORKER_FAMILIES"  # the model families a worker serves (set by python -m workers)


class Runtime:
    def __init__(self, settings: Settings, processes: int = 1) -> None:
        self.settings = settings
        self.policy = settings.analysis
        self.storage = Storage(settings.storage.path)
        self.registry = settings.registry
        self._processes = processes
        self._catalog: Engine | None = None
        self._models: dict[str, Model] = {}
        self._lock = threading.Lock()

    @property
    def catalog(self) -> Engine:
        with self._lock:
            if self._catalog is None:
                self._catalog = open_catalog(self.settings.catalog.url)
            return self._catalog

    def model(self, name: str) -> Model:
        with self._lock:
            if name not in self._models:
                spec = self.registry.get(name)
                device = self._device()
                self._models[name] = spec.load(device)
                log.info("loaded model %s %s on %s", spec.name, spec.version, device)
            return self._models[name]

    def warm_up(self, names: list[str]) -> None:
        """Load models before the first job: loading torch holds the GIL for seconds, starving heartbeats,
        and a model that cannot load is better reported at start-up. First the allocator keeps what it frees
        (analysis.keep_memory, workers/arena.py), so the models' memory is kept too."""
        if self.policy.keep_memory:
            keep_freed_memory()
        for name in names:
            try:
                self.model(name)
            except Exception:
                log.exception("model %s failed to load; its jobs will fail until this is fixed", name)
        _warm_encoders()
        # Everything imported and loaded so far lives as long as the process: out of the collector's sight, a
        # full collection during a job no longer walks torch's and pydicom's quarter of a million objects
        # (0.1 s of every other 300-slice load).
        gc.freeze()

    def _device(self) -> str:
        import torch

        threads = self.policy.torch_threads or max(1, (os.cpu_count() or 1) // self._processes)
        torch.set_num_threads(threads)
        if self.policy.device != "auto":
            return self.policy.device
        return "cuda" if torch.cuda.is_available() else "cpu"


def _warm_encoders() -> None:
    """Encode one SR from a synthetic header: highdicom reads its tables of the standard on the first SR or SEG a
    process builds (0.3 s here), which would otherwise fall on the first study after every start."""
    from dicomnode.demo.synthetic import SeriesSpec, ct_slice
    from dicomnode.results.encode import encode_out_of_scope
    from dicomnode.results.identity import ResultIdentity

    try:
        header = ct_slice(SeriesSpec(rows=4, columns=4), 0)
        identity = ResultIdentity.of(str(header.StudyInstanceUID), "warm-up", "0", str(header.SOPInstanceUID))
        encode_out_of_scope([header], identity, "warm-up")
    except Exception:  # only time is at stake (the first study pays it): never a reason not to start
        log.exception("warming up the result encoders failed")


_current: Runtime | None = None


def configure(runtime: Runtime) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("worker runtime not configured (start workers with `dicomnode worker`)")
    return _current
