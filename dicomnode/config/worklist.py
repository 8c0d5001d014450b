"""[worklist]: the default class, the scoring policy, how often overdue items move."""

from __future__ import annotations

from pydantic import Field, field_validator

from dicomnode.config.base import Section
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from dicomnode.worklist.scoring import ScoringPolicy


class WorklistConfig(Section):
    default_priority: str = Field(
        "ROUTINE", description="Class of a study whose order carries no Requested Procedure Priority."
    )
    scoring: ScoringPolicy = Field(default_factory=ScoringPolicy)
    overdue_check_seconds: float = Field(5, gt=0, description="How often items crossing their maximum wait are moved.")

    @field_validator("default_priority")
    @classmethod
    def _known_class(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"}:
            raise ValueError("must be one of STAT, HIGH, ROUTINE, MEDIUM, LOW")
        return value

    def priority(self, requested_procedure_priority: str | None) -> PriorityClass:
        return from_requested_procedure_priority(requested_procedure_priority, self.default_priority)
