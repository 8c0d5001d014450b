"""[retention] and [log]: deleting old studies, and how the node logs."""

from __future__ import annotations

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
