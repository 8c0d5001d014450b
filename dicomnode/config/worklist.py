"""[worklist]: the default class, the scoring policy, how often overdue items move."""

from __future__ import annotations

import string
from urllib.parse import quote

from pydantic import Field, field_validator

from dicomnode.config.base import Section
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from dicomnode.worklist.scoring import ScoringPolicy

VIEWER_FIELDS = ("study_instance_uid", "accession_number", "patient_id")


class WorklistConfig(Section):
    default_priority: str = Field(
        "ROUTINE", description="Class of a study whose order carries no Requested Procedure Priority."
    )
    scoring: ScoringPolicy = Field(default_factory=ScoringPolicy)
    overdue_check_seconds: float = Field(5, gt=0, description="How often items crossing their maximum wait are moved.")
    viewer_url: str | None = Field(
        None,
        description="Where a study's images open (an OHIF or PACS viewer): a URL template with {study_instance_uid}, "
        "{accession_number} and {patient_id}, e.g. https://pacs.example/viewer?StudyInstanceUIDs={study_instance_uid}.",
    )

    @field_validator("viewer_url")
    @classmethod
    def _viewer_template(cls, template: str | None) -> str | None:
        if template is None:
            return None
        if not template.startswith(("https://", "http://")):
            raise ValueError("must be an http:// or https:// URL template")
        names = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        unknown = names - set(VIEWER_FIELDS)
        if unknown:
            raise ValueError(f"unknown placeholder {{{sorted(unknown)[0]}}}; use {', '.join(VIEWER_FIELDS)}")
        return template

    def viewer_link(self, **values: str | None) -> str | None:
        """The viewer URL for one study, each value URL-encoded; None when no viewer is configured."""
        if self.viewer_url is None:
            return None
        return self.viewer_url.format(**{k: quote(values.get(k) or "", safe="") for k in VIEWER_FIELDS})

    @field_validator("default_priority")
    @classmethod
    def _known_class(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"}:
            raise ValueError("must be one of STAT, HIGH, ROUTINE, MEDIUM, LOW")
        return value

    def priority(self, requested_procedure_priority: str | None) -> PriorityClass:
        return from_requested_procedure_priority(requested_procedure_priority, self.default_priority)
