"""What a simulated reading room is made of: arrivals, readers, the model. The defaults are the target scenario of
the README: 40 studies an hour around the clock, 4 readers near saturation, 2% critical, a model at sensitivity
0.9 and specificity 0.9."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CLASSES = ("STAT", "HIGH", "ROUTINE", "LOW")


class Arrivals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_per_hour: dict[str, float] = Field(
        default_factory=lambda: {"STAT": 4.0, "HIGH": 6.0, "ROUTINE": 26.0, "LOW": 4.0},
        description="Mean arrivals an hour per order class (scaled hour by hour by day_profile).",
    )
    day_profile: list[float] = Field(
        default_factory=lambda: [1.0] * 24, description="24 relative rates, midnight first; their mean is kept at 1."
    )
    modality_mix: dict[str, float] = Field(default_factory=lambda: {"CT": 0.5, "DX": 0.35, "MR": 0.15})
    prevalence: float = Field(0.02, ge=0, le=1, description="Share of studies with a truly critical finding.")
    days: float = Field(7, gt=0, le=366)

    @field_validator("rate_per_hour")
    @classmethod
    def _classes(cls, rates: dict[str, float]) -> dict[str, float]:
        unknown = set(rates) - set(CLASSES)
        if unknown or any(r < 0 for r in rates.values()) or not any(rates.values()):
            raise ValueError(f"rates are >= 0 per class of {', '.join(CLASSES)}, at least one > 0")
        return rates

    @field_validator("day_profile")
    @classmethod
    def _profile(cls, profile: list[float]) -> list[float]:
        if len(profile) != 24 or any(v < 0 for v in profile) or not any(profile):
            raise ValueError("day_profile is 24 rates >= 0 (midnight first), at least one > 0")
        mean = sum(profile) / 24
        return [v / mean for v in profile]


class ReadingRoom(BaseModel):
    model_config = ConfigDict(extra="forbid")

    readers: int = Field(4, ge=1, le=1000)
    read_minutes: dict[str, float] = Field(
        default_factory=lambda: {"CT": 6.5, "DX": 2.5, "MR": 11.0},
        description="Mean minutes a reader takes per study, per modality (log-normal).",
    )
    read_cv: float = Field(0.5, ge=0, le=5, description="Coefficient of variation of read times.")
    default_read_minutes: float = Field(6.0, gt=0, description="For a modality without its own mean.")

    def mean_read(self, modality: str) -> float:
        return self.read_minutes.get(modality, self.default_read_minutes)


class Detector(BaseModel):
    """The model at its operating point. Scores are binormal (d' from sensitivity and specificity) and each flag
    carries the calibrated probability at its score: a flag at low prevalence is mostly a weak one, as it would be
    from the node."""

    model_config = ConfigDict(extra="forbid")

    sensitivity: float = Field(0.9, gt=0, lt=1)
    specificity: float = Field(0.9, gt=0, lt=1)
    urgency: float = Field(1.0, ge=0, le=1, description="The finding's urgency, as in the model's manifest.")
    label: str = "critical finding"


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arrivals: Arrivals = Field(default_factory=Arrivals)
    room: ReadingRoom = Field(default_factory=ReadingRoom)
    detector: Detector = Field(default_factory=Detector)
    seed: int = 20261202

    @model_validator(mode="after")
    def _mix(self) -> Scenario:
        if not self.arrivals.modality_mix or any(v < 0 for v in self.arrivals.modality_mix.values()):
            raise ValueError("modality_mix needs at least one modality, shares >= 0")
        return self
