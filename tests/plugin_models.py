"""Bring-your-own models used by the tests, loaded through `[analysis] model_plugins` like a user's would be.

Both wrap the real stand-in torch model. `slow` sleeps first, so a test can
kill a worker mid-job; `flaky` raises a transient error on its first
FLAKY_FAILURES attempts (counted in a file, since attempts span processes).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from models.findings import Finding
from models.image import ImageVolume
from models.registry import ModelSpec
from models.standin import StandInModel


class SlowModel(StandInModel):
    name = "slow"
    version = "1"

    def predict(self, volume: ImageVolume) -> list[Finding]:
        marker = os.environ.get("SLOW_MODEL_STARTED")
        if marker:
            Path(marker).write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("SLOW_MODEL_SECONDS", "3")))
        return super().predict(volume)


class FlakyModel(StandInModel):
    name = "flaky"
    version = "1"

    def predict(self, volume: ImageVolume) -> list[Finding]:
        counter = Path(os.environ["FLAKY_COUNTER"])
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        if calls <= int(os.environ.get("FLAKY_FAILURES", "2")):
            raise OSError(f"transient failure {calls} (test)")
        return super().predict(volume)


SPECS = [
    ModelSpec("slow", "1", "ct", "tests.plugin_models:SlowModel", "sleeps, then runs the stand-in"),
    ModelSpec("flaky", "1", "ct", "tests.plugin_models:FlakyModel", "fails transiently, then runs the stand-in"),
]
