"""[retention], [log] and [monitoring]: deleting old studies, how the node logs, watching the models."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator, model_validator

from dicomnode.config.base import Section


class RetentionConfig(Section):
    """Deleting stored studies: after max_age_days, or oldest first while the disk is above the high watermark.
    Studies with open jobs, sends or worklist items are never deleted."""

    max_age_days: float = Field(0, ge=0, description="Delete studies last received this many days ago; 0: never.")
    disk_high_watermark_percent: float = Field(
        0, ge=0, lt=100, description="Above this disk use, delete oldest studies first; 0: off."
    )
    disk_low_watermark_percent: float = Field(
        0, ge=0, lt=100, description="... until disk use is below this (default: high watermark minus 5)."
    )
    interval_minutes: float = Field(60, gt=0, description="How often the node applies retention.")
    dry_run: bool = Field(False, description="Only log what would be deleted.")

    @model_validator(mode="after")
    def _low_below_high(self) -> RetentionConfig:
        if self.disk_high_watermark_percent and not self.disk_low_watermark_percent:
            self.disk_low_watermark_percent = max(0.0, self.disk_high_watermark_percent - 5)
        if self.disk_high_watermark_percent and self.disk_low_watermark_percent >= self.disk_high_watermark_percent:
            raise ValueError("disk_low_watermark_percent must be below disk_high_watermark_percent")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.max_age_days or self.disk_high_watermark_percent)


class LogConfig(Section):
    level: str = "INFO"
    format: str = Field("text", pattern="^(text|json)$", description="json: one JSON object per line.")

    @field_validator("level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level


class MonitoringConfig(Section):
    """Model monitoring per model version, from the catalog (every worker's results): rates, scores, time to
    result, input drift against a baseline window, reader agreement; a figure past its threshold raises an alert
    (metric dicomnode_model_alert, a `model_alert` webhook through [notify], the audit trail)."""

    window_days: float = Field(7, gt=0, description="The recent window the figures and alerts judge.")
    baseline_studies: int = Field(
        200, ge=10, description="Baseline: a model version's first N analysed studies (unless baseline_from is set)."
    )
    baseline_from: datetime | None = Field(None, description="Pinned baseline start (UTC), with baseline_until.")
    baseline_until: datetime | None = Field(None, description="Pinned baseline end (UTC).")
    min_studies: int = Field(30, ge=1, description="No alert from fewer studies than this in the window.")
    psi_alert: float = Field(0.25, gt=0, description="Population stability index of an input feature that alerts.")
    positive_rate_change_alert: float = Field(
        0.10, gt=0, le=1, description="Alert when the positive rate moves this far (absolute) from the baseline's."
    )
    failed_rate_alert: float = Field(0.05, gt=0, le=1, description="Share of failed jobs that alerts.")
    out_of_scope_rate_alert: float = Field(0.25, gt=0, le=1, description="Share of out-of-scope jobs that alerts.")
    agreement_alert: float = Field(0.7, gt=0, le=1, description="Readers' agreement below this alerts.")
    min_feedback: int = Field(20, ge=1, description="No agreement alert from fewer verdicts than this.")
    check_minutes: float = Field(15, gt=0, description="How often the node evaluates the alerts.")

    @model_validator(mode="after")
    def _pinned_baseline(self) -> MonitoringConfig:
        if (self.baseline_from is None) != (self.baseline_until is None):
            raise ValueError("baseline_from and baseline_until go together")
        if self.baseline_from and self.baseline_until and self.baseline_from >= self.baseline_until:
            raise ValueError("baseline_from must be before baseline_until")
        return self
