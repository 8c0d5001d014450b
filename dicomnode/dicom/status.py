"""Every status this node sends or interprets, in one place: DIMSE statuses (PS3.4 Annex B, PS3.7 Annex C)
and A-ASSOCIATE-RJ reasons (PS3.8 9.3.4). Names follow pynetdicom where it has them."""

from __future__ import annotations

from pynetdicom.status import Status

SUCCESS = int(Status.SUCCESS)

# C-STORE failures we answer (PS3.4 Table B.2-1).
OUT_OF_RESOURCES = 0xA700  # disk full, write error, instance too large, below free-space floor
SOP_CLASS_MISMATCH = 0xA900  # data set does not match the SOP class of the request
CANNOT_UNDERSTAND = 0xC000  # data set cannot be decoded or lacks required attributes
INVALID_UID = 0xC001  # a UID breaks the DICOM grammar (nothing written)
INSTANCE_UID_MISMATCH = 0xC002  # data set SOP Instance UID differs from the request's

# Query/Retrieve (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4).
PENDING = 0xFF00  # a match follows (C-FIND), sub-operations continue (C-MOVE, C-GET)
CANCELLED = 0xFE00
MOVE_DESTINATION_UNKNOWN = 0xA801
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900  # e.g. no or an unknown QueryRetrieveLevel
UNABLE_TO_PROCESS = 0xC000
SUB_OPERATIONS_WITH_FAILURES = 0xB000  # warning: some sub-operations failed

# What a peer may answer when we send (PS3.7 C.4.2.1.4, PS3.4 B.2.3).
SOP_CLASS_NOT_SUPPORTED = 0x0122
NOT_AUTHORIZED = 0x0124
COERCION_OF_DATA_ELEMENTS = 0xB000
ELEMENTS_DISCARDED = 0xB006
DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007
STORED = frozenset({SUCCESS, COERCION_OF_DATA_ELEMENTS, ELEMENTS_DISCARDED, DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING})
# Refusals that retrying cannot fix; others (out of resources, processing failure, ...) may pass later.
_PERMANENT = frozenset({SOP_CLASS_NOT_SUPPORTED, NOT_AUTHORIZED, SOP_CLASS_MISMATCH})
_CANNOT_UNDERSTAND_RANGE = range(0xC000, 0xD000)

# A-ASSOCIATE-RJ (result, source, diagnostic).
CALLING_AE_NOT_RECOGNIZED = (0x01, 0x01, 0x03)  # permanent, service user
CALLED_AE_NOT_RECOGNIZED = (0x01, 0x01, 0x07)  # permanent, service user
TEMPORARY_CONGESTION = (0x02, 0x03, 0x01)  # transient, service provider (presentation)
LOCAL_LIMIT_EXCEEDED = (0x02, 0x03, 0x02)  # transient, service provider (presentation)


# A-ASSOCIATE-RJ reasons in words (PS3.8 Table 9-21), by (source, diagnostic).
REJECTION_REASONS = {
    (1, 1): "no reason given",
    (1, 2): "application context name not supported",
    (1, 3): "calling AE title not recognized",
    (1, 7): "called AE title not recognized",
    (2, 1): "no reason given (ACSE)",
    (2, 2): "protocol version not supported",
    (3, 1): "temporary congestion",
    (3, 2): "local limit exceeded",
}


def rejection_reason(result: int, source: int, diagnostic: int) -> str:
    """An A-ASSOCIATE-RJ as a person reads it: why, and whether trying again later may help."""
    why = REJECTION_REASONS.get((source, diagnostic), f"reason {diagnostic} from source {source}")
    return f"{why} ({'permanent' if result == 1 else 'transient: try again later'})"


def is_stored(status: int | None) -> bool:
    """The peer took the instance: success, or a warning that says it was stored."""
    return status is not None and status in STORED


def is_permanent_failure(status: int | None) -> bool:
    """A refusal that the same request will meet again."""
    return status is not None and (status in _PERMANENT or status in _CANNOT_UNDERSTAND_RANGE)


def hex_code(status: int | None) -> str:
    return "-" if status is None else f"0x{status:04X}"
