"""Bring-your-own models used by the tests, loaded through `[analysis] model_plugins` like a user's would be.

As a user's plugin should be, this module is torch-free: torch is imported by
the loaders, in the process that runs the model (a prefork worker's child).
Both models wrap the real stand-in torch model. `slow` sleeps first, so a test
can kill a worker mid-job; `flaky` raises a transient error on its first
FLAKY_FAILURES attempts (counted in a file, since attempts span processes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from models.registry import ModelSpec


class _StandInWrapper:
    """The built-in stand-in detector under another name, with a hook before each prediction."""

    def __init__(self, spec: ModelSpec, device: str, before: Any) -> None:
        from models.registry import builtin_spec

        self.inner = builtin_spec("standin-hyperdense").load(device)
        self.name, self.version, self.before = spec.name, spec.version, before

    def predict(self, volume):  # noqa: ANN001, ANN201
        self.before()
        return self.inner.predict(volume)


def _sleep() -> None:
    marker = os.environ.get("SLOW_MODEL_STARTED")
    if marker:
        Path(marker).write_text(str(os.getpid()))
    time.sleep(float(os.environ.get("SLOW_MODEL_SECONDS", "3")))


def _fail_at_first() -> None:
    counter = Path(os.environ["FLAKY_COUNTER"])
    calls = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(calls))
    if calls <= int(os.environ.get("FLAKY_FAILURES", "2")):
        raise OSError(f"transient failure {calls} (test)")


def load_slow(spec: ModelSpec, device: str) -> Any:
    return _StandInWrapper(spec, device, _sleep)


def load_flaky(spec: ModelSpec, device: str) -> Any:
    return _StandInWrapper(spec, device, _fail_at_first)


SPECS = [
    ModelSpec("slow", "1", "ct", "tests.support.plugin_models:load_slow", "sleeps, then runs the stand-in"),
    ModelSpec("flaky", "1", "ct", "tests.support.plugin_models:load_flaky", "fails at first, then runs the stand-in"),
]
