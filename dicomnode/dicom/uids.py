"""The DICOM UID grammar (PS3.5 9.1), checked before a UID becomes part of a path."""

import re
import uuid

from dicomnode.errors import DicomnodeError

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_UID_LENGTH = 64
_NAMESPACE = uuid.UUID("8d3c5e0e-4f51-5b7a-9a57-6469636f6d6e")  # fixed forever: changing it changes every result UID


def is_valid_uid(value: object) -> bool:
    """True when `value` is a string that obeys the UID grammar and length."""
    return isinstance(value, str) and len(value) <= MAX_UID_LENGTH and bool(_UID_RE.match(value))


class InvalidUIDError(DicomnodeError, ValueError):
    """A UID that breaks the DICOM grammar; carries which attribute it was."""

    def __init__(self, attribute: str, value: object) -> None:
        # The value itself is never shown: a malformed field may hold anything, PHI included.
        what = "missing" if value in (None, "") else "not a valid DICOM UID"
        super().__init__(f"{attribute} is {what}")
        self.attribute = attribute


def require_uid(attribute: str, value: object) -> str:
    """Return `value` if it is a valid UID, else raise InvalidUIDError naming the attribute."""
    if not is_valid_uid(value):
        raise InvalidUIDError(attribute, value)
    return value  # type: ignore[return-value]


def derived_uid(*parts: str) -> str:
    """A UID that is the same every time for the same parts: 2.25 plus a name-based (v5) UUID.

    Results use it so that re-running a job replaces its output instead of adding to it.
    (pydicom's generate_uid ignores its entropy sources when the prefix is 2.25.)
    """
    return f"2.25.{uuid.uuid5(_NAMESPACE, chr(0).join(parts)).int}"
