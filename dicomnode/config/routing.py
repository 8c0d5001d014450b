"""[routing]: the rules that send a study's series to models, and where results go."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from dicomnode.config.base import AETitle, Section


class RuleMatch(Section):
    """Criteria a series must meet; empty criteria match anything. Lists match any of their values."""

    modality: list[str] = Field(default_factory=list)
    body_part: list[str] = Field(default_factory=list, description="Body Part Examined, e.g. HEAD, CHEST.")
    sop_class: list[str] = Field(default_factory=list, description="SOP Class UIDs.")
    series_description: str | None = Field(None, description="Regular expression searched in Series Description.")
    calling_ae: list[AETitle] = Field(default_factory=list, description="The sender's AE title.")
    called_ae: list[AETitle] = Field(default_factory=list, description="Our AE title the sender addressed.")

    @field_validator("series_description")
    @classmethod
    def _regex_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


# The PACS deploy/dicomnode.example.toml routes to: results sent there would go to whoever owns that address.
EXAMPLE_DESTINATION = "PACS@10.0.0.10:104"


class RoutingRule(Section):
    name: str = Field(min_length=1, max_length=64)
    match: RuleMatch = Field(default_factory=RuleMatch)
    models: list[str] = Field(min_length=1, description="Models to run on the matching series.")
    destinations: list[str] = Field(
        default_factory=list,
        description="Where results go: AE@HOST:PORT, or tls:AE@HOST:PORT for DICOM over TLS; mllp://HOST:PORT "
        "(mllps:// for TLS) for an HL7 ORU^R01 to the RIS.",
    )

    @field_validator("destinations")
    @classmethod
    def _destinations_parse(cls, destinations: list[str]) -> list[str]:
        from dicomnode.dicom.scu import Destination
        from dicomnode.hl7.mllp import Endpoint, is_hl7_destination

        for d in destinations:
            (Endpoint if is_hl7_destination(d) else Destination).parse(d)  # raises ValueError naming the bad value
            if d.removeprefix("tls:") == EXAMPLE_DESTINATION:
                raise ValueError(f"{d} is the example configuration's PACS: put your own PACS here")
        return destinations


def _default_rules() -> list[RoutingRule]:
    return [
        RoutingRule(
            name="ct-head",
            match=RuleMatch(modality=["CT"], body_part=["HEAD", "BRAIN", "SKULL"]),
            models=["ct-hemorrhage"],
        ),
        RoutingRule(
            name="chest-radiograph",
            match=RuleMatch(modality=["CR", "DX"], body_part=["CHEST"]),
            models=["cxr-pneumothorax"],
        ),
    ]


class RoutingConfig(Section):
    rules: list[RoutingRule] = Field(
        default_factory=_default_rules,
        description="Every matching rule applies; a study matching none is not analysed.",
    )
