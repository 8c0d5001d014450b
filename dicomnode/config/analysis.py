"""[analysis]: broker or embedded workers, device, retries, heartbeats, where models come from."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dicomnode.config.base import RetryPolicy


class AnalysisConfig(RetryPolicy):
    broker_url: str | None = Field(
        None, description="Celery broker, e.g. redis://host:6379/0. Unset: analysis runs inside `dicomnode serve`."
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; not needed, the catalog holds job state."
    )
    embedded_workers: int = Field(
        1, ge=1, description="Analysis threads inside `dicomnode serve` when no broker is set."
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", description="auto: CUDA when present, else CPU."
    )
    keep_memory: bool = Field(
        True,
        description="A process that analyses keeps the memory it freed for the next study (workers/arena.py): "
        "its RSS stays near its largest study's; false gives it back, and each study faults it in again.",
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads per worker process; 0: cores / worker processes.")
    series: Literal["best", "all"] = Field(
        "best",
        description="Several series of a study routed to one volumetric model: read the best one (original, axial, "
        "soft-tissue kernel, the model's slice spacing; dicomnode/analysis/choice.py) or all of them.",
    )
    max_attempts: int = Field(3, ge=1, description="Attempts before a job is marked failed.")
    retry_backoff_s: float = Field(10, gt=0, description="Wait before the 2nd attempt; doubles for each further one.")
    retry_backoff_max_s: float = Field(600, gt=0)
    heartbeat_s: float = Field(10, gt=0, description="How often a running job proves its worker is alive.")
    heartbeat_timeout_s: float = Field(60, gt=0, description="A running job silent this long is re-queued.")
    visibility_timeout_s: int = Field(
        7200, ge=60, description="Redis redelivers an unacknowledged job after this; keep it above the longest job."
    )
    poll_seconds: float = Field(1, gt=0, description="How often the scheduler publishes due jobs and reaps dead ones.")
    models_dir: Path | None = Field(
        None,
        description="Bring-your-own models: a folder with one sub-folder per model holding manifest.toml and "
        "its exported weights (torch.export .pt2 or TorchScript). See `dicomnode models check`.",
    )
    model_plugins: list[str] = Field(
        default_factory=list, description="Python models: 'module:attribute' naming a ModelSpec or a list of them."
    )

    @model_validator(mode="after")
    def _timeout_above_heartbeat(self) -> AnalysisConfig:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_s:
            raise ValueError("heartbeat_timeout_s must be more than twice heartbeat_s")
        return self
