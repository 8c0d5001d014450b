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


def load_slow(device: str) -> Any:
    from models.standin import StandInModel

    class SlowModel(StandInModel):
        name = "slow"
        version = "1"

        def predict(self, volume):  # noqa: ANN001, ANN202
            marker = os.environ.get("SLOW_MODEL_STARTED")
            if marker:
                Path(marker).write_text(str(os.getpid()))
            time.sleep(float(os.environ.get("SLOW_MODEL_SECONDS", "3")))
            return super().predict(volume)

    return SlowModel(device)


def load_flaky(device: str) -> Any:
    from models.standin import StandInModel

    class FlakyModel(StandInModel):
        name = "flaky"
        version = "1"

        def predict(self, volume):  # noqa: ANN001, ANN202
            counter = Path(os.environ["FLAKY_COUNTER"])
            calls = int(counter.read_text()) + 1 if counter.exists() else 1
            counter.write_text(str(calls))
            if calls <= int(os.environ.get("FLAKY_FAILURES", "2")):
                raise OSError(f"transient failure {calls} (test)")
            return super().predict(volume)

    return FlakyModel(device)


SPECS = [
    ModelSpec("slow", "1", "ct", "tests.plugin_models:load_slow", "sleeps, then runs the stand-in"),
    ModelSpec("flaky", "1", "ct", "tests.plugin_models:load_flaky", "fails transiently, then runs the stand-in"),
]
