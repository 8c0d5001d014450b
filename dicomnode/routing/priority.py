"""Clinical order priority: the one mapping from DICOM priority values to our classes and queue priorities."""

from __future__ import annotations

from enum import IntEnum


class PriorityClass(IntEnum):
    """Value is the broker priority: 0 is served first (Redis priority steps are 0, 3, 6, 9)."""

    STAT = 0
    HIGH = 3
    ROUTINE = 6
    LOW = 9


# Requested Procedure Priority (0040,1003): STAT, HIGH, ROUTINE, MEDIUM, LOW.
_REQUESTED_PROCEDURE = {
    "STAT": PriorityClass.STAT,
    "HIGH": PriorityClass.HIGH,
    "ROUTINE": PriorityClass.ROUTINE,
    "MEDIUM": PriorityClass.ROUTINE,
    "LOW": PriorityClass.LOW,
}


def from_requested_procedure_priority(value: str | None, default: str = "ROUTINE") -> PriorityClass:
    """Unknown or missing priorities take the default class (ROUTINE unless configured): never promoted by
    accident, never starved."""
    return _REQUESTED_PROCEDURE.get((value or "").strip().upper(), _REQUESTED_PROCEDURE[default])


# UPS Scheduled Procedure Step Priority (0074,1200) has only HIGH, MEDIUM and LOW.
UPS_PRIORITY = {
    PriorityClass.STAT: "HIGH",
    PriorityClass.HIGH: "HIGH",
    PriorityClass.ROUTINE: "MEDIUM",
    PriorityClass.LOW: "LOW",
}


# HL7 v2 Table 0027 Priority (ORC-7.6, TQ1-9, OBR-27.6) as the Requested Procedure Priority term it means: Stat,
# ASAP and Timing critical are urgent; Routine, Preop and Callback are routine.
HL7_PRIORITY = {"S": "STAT", "A": "HIGH", "T": "HIGH", "R": "ROUTINE", "P": "ROUTINE", "C": "ROUTINE"}
# The other way, for the order changes we send: our class as the HL7 priority code.
HL7_CODE = {PriorityClass.STAT: "S", PriorityClass.HIGH: "A", PriorityClass.ROUTINE: "R", PriorityClass.LOW: "R"}


def from_hl7_priority(code: str | None) -> str | None:
    """The Requested Procedure Priority term an HL7 priority code means; None when it is missing or unknown."""
    return HL7_PRIORITY.get((code or "").strip().upper()[:1]) if code else None
