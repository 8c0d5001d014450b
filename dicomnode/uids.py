"""The DICOM UID grammar (PS3.5 9.1), checked before a UID becomes part of a path."""

import re

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
MAX_UID_LENGTH = 64


def is_valid_uid(value: object) -> bool:
    """True when `value` is a string that obeys the UID grammar and length."""
    return isinstance(value, str) and len(value) <= MAX_UID_LENGTH and bool(_UID_RE.match(value))


class InvalidUIDError(ValueError):
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
