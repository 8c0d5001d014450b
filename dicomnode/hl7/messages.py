"""HL7 v2 messages in and out. In: an order (ORM^O01, OMI^O23) read with python-hl7, which takes real-world
messages as they come (any 2.x version, optional fields missing); every refusal is an error with the ACK code
it earns. Out: ACK, ORU^R01 and ORM^O01 built with hl7apy against the v2.5.1 structures, so that what we send
is valid by construction.

ACK codes (HL7 table 0008): AA accepted; AE the message was understood but its content is in error (e.g. no
accession number); AR the message was refused as a whole (not HL7, a type we do not process, no control ID).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

import hl7
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message

from dicomnode.errors import DicomnodeError
from dicomnode.routing.priority import from_hl7_priority

VERSION = "2.5.1"
ORDER_TYPES = {("ORM", "O01"), ("OMI", "O23")}
# ORC-1 order control (HL7 table 0119): what each one does to our copy of the order.
NEW_OR_CHANGED = {"NW", "XO", "SC", "XX"}
CANCELLED = {"CA", "OC", "DC", "OD", "CR"}
NOT_FOR_DIAGNOSIS = "AI triage output for worklist prioritisation only; not for diagnostic use."


class Refused(DicomnodeError, ValueError):
    """The message cannot be processed at all (answered AR) or its content is in error (AE)."""

    def __init__(self, code: str, reason: str, error_code: str = "207") -> None:
        super().__init__(reason)
        self.code = code  # AR or AE
        self.reason = reason
        self.error_code = error_code  # HL7 table 0357: 200 unsupported type, 101 required field missing, ...


@dataclass(frozen=True)
class Header:
    """What an ACK needs from the message it answers."""

    control_id: str
    message_type: str  # e.g. ORM^O01
    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    processing_id: str
    version: str


@dataclass(frozen=True)
class OrderMessage:
    header: Header
    order_control: str  # ORC-1
    accession_number: str
    placer_order_number: str
    filler_order_number: str
    hl7_priority: str  # as sent; "" when none
    procedure_code: str
    procedure_text: str
    patient_id: str
    patient_name: str
    ordering_provider: str
    cancelled: bool = field(default=False)

    @property
    def priority(self) -> str | None:
        """As Requested Procedure Priority (STAT, HIGH, ROUTINE); None when the order gave none we know."""
        return from_hl7_priority(self.hl7_priority)

    @property
    def sender(self) -> str:
        return f"{self.header.sending_application}^{self.header.sending_facility}"


def _text(message: str | bytes) -> str:
    if isinstance(message, bytes):
        message = message.decode("utf-8", errors="replace")
    return re.sub(r"\r\n|\n", "\r", message).strip("\r")


def _get(msg: hl7.Message, path: str) -> str:
    """A field or component by python-hl7's accessor (e.g. "OBR.F18", "ORC.F7.R1.C6"); "" when absent."""
    try:
        return str(msg[path] or "").strip()
    except (KeyError, IndexError, ValueError):
        return ""


def read_header(message: str | bytes) -> tuple[hl7.Message, Header]:
    """Parse the message and its MSH; Refused(AR) when it is not HL7 v2 or has no control ID or type."""
    text = _text(message)
    if not text.startswith("MSH") or len(text) < 8:
        raise Refused("AR", "not an HL7 v2 message: it must start with an MSH segment", "100")
    try:
        msg = hl7.parse(text)
    except Exception as exc:  # python-hl7 raises several types for malformed text
        raise Refused("AR", f"not an HL7 v2 message: {exc}", "100") from None
    header = Header(
        control_id=_get(msg, "MSH.F10"),
        message_type=f"{_get(msg, 'MSH.F9.R1.C1')}^{_get(msg, 'MSH.F9.R1.C2')}".upper(),
        sending_application=_get(msg, "MSH.F3.R1.C1"),
        sending_facility=_get(msg, "MSH.F4.R1.C1"),
        receiving_application=_get(msg, "MSH.F5.R1.C1"),
        receiving_facility=_get(msg, "MSH.F6.R1.C1"),
        processing_id=_get(msg, "MSH.F11.R1.C1") or "P",
        version=_get(msg, "MSH.F12.R1.C1"),
    )
    if not header.control_id:
        raise Refused("AR", "MSH-10 (message control ID) is missing", "101")
    if header.message_type == "^":
        raise Refused("AR", "MSH-9 (message type) is missing", "101")
    return msg, header


def parse_order(msg: hl7.Message, header: Header, accession_fields: list[str]) -> OrderMessage:
    """An ORM^O01 or OMI^O23 (as read_header returned it) as an order; Refused with the ACK code it earns
    otherwise."""
    kind = tuple(header.message_type.split("^"))
    if kind not in ORDER_TYPES:
        raise Refused("AR", f"message type {header.message_type} is not processed here (ORM^O01, OMI^O23)", "200")
    order_control = _get(msg, "ORC.F1").upper()
    if not order_control:
        raise Refused("AE", "ORC-1 (order control) is missing", "101")
    if order_control not in NEW_OR_CHANGED | CANCELLED:
        raise Refused("AE", f"order control {order_control} is not processed here (NW, XO, SC, CA, OC, DC)", "207")
    accession = next((v for f in accession_fields if (v := _get(msg, _path(f)))), "")
    if not accession:
        raise Refused("AE", f"no accession number in {', '.join(accession_fields)}", "101")
    if len(accession) > 16:
        raise Refused("AE", "the accession number is longer than DICOM's 16 characters", "102")
    return OrderMessage(
        header=header,
        order_control=order_control,
        accession_number=accession,
        placer_order_number=_get(msg, "ORC.F2.R1.C1") or _get(msg, "OBR.F2.R1.C1"),
        filler_order_number=_get(msg, "ORC.F3.R1.C1") or _get(msg, "OBR.F3.R1.C1"),
        # v2.5 puts priority in TQ1-9; earlier versions in ORC-7 and OBR-27 (component 6 of the TQ)
        hl7_priority=_get(msg, "TQ1.F9.R1.C1") or _get(msg, "ORC.F7.R1.C6") or _get(msg, "OBR.F27.R1.C6"),
        procedure_code=_get(msg, "OBR.F4.R1.C1"),
        procedure_text=_get(msg, "OBR.F4.R1.C2"),
        patient_id=_get(msg, "PID.F3.R1.C1"),
        patient_name=_whole(msg, "PID", 5),
        ordering_provider=_whole(msg, "ORC", 12) or _whole(msg, "OBR", 16),
        cancelled=order_control in CANCELLED or _get(msg, "ORC.F5").upper() == "CA",
    )


def _path(name: str) -> str:
    segment, number = name.split("-")
    return f"{segment}.F{int(number)}.R1.C1"


def _whole(msg: hl7.Message, segment: str, number: int) -> str:
    """A whole field with its components (a name: FAMILY^GIVEN), first repetition."""
    try:
        return str(msg.segment(segment)[number]).split("~")[0].strip()
    except (KeyError, IndexError):
        return ""


def escape(text: str) -> str:
    """HL7 escape sequences (v2.5.1 section 2.7) for text put in a field; hl7apy would read them as separators."""
    return (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
        .replace("\r", " ")
        .replace("\n", " ")
    )


def timestamp(at: datetime | None = None) -> str:
    return (at or datetime.now(UTC)).strftime("%Y%m%d%H%M%S")


def new_message(structure: str, message_type: str, control_id: str, application: str, facility: str) -> Message:
    """An hl7apy message with its MSH filled: ours as sender, v2.5.1, production."""
    message = Message(structure, version=VERSION, validation_level=VALIDATION_LEVEL.STRICT)
    msh = message.msh
    msh.msh_3 = escape(application)
    if facility:
        msh.msh_4 = escape(facility)
    msh.msh_7 = timestamp()
    msh.msh_9 = message_type
    msh.msh_10 = escape(control_id[:20])
    msh.msh_11 = "P"
    return message


def ack(
    header: Header | None,
    code: str,
    text: str,
    application: str,
    facility: str,
    control_id: str,
    error_code: str = "207",
) -> str:
    """The ACK to `header`'s message (ER7 text). With no header (the message could not be read) it answers an
    empty control ID, as HL7 allows."""
    message = new_message("ACK", f"ACK^{_trigger(header)}^ACK", control_id, application, facility)
    if header is not None:
        if header.sending_application:
            message.msh.msh_5 = escape(header.sending_application)
        if header.sending_facility:
            message.msh.msh_6 = escape(header.sending_facility)
        message.msh.msh_11 = escape(header.processing_id[:1]) or "P"
    message.msa.msa_1 = code
    message.msa.msa_2 = escape((header.control_id if header else "")[:20])
    if code != "AA":
        message.msa.msa_3 = escape(text[:80])
        err = message.add_segment("ERR")
        err.err_3 = f"{error_code}^{_ERROR_NAMES.get(error_code, 'Application error')}^HL70357"
        err.err_4 = "E"
        err.err_8 = escape(text[:250])
    return message.to_er7()


def _trigger(header: Header | None) -> str:
    trigger = header.message_type.split("^")[1] if header else ""
    return trigger if re.fullmatch(r"[A-Z0-9]{3}", trigger) else "O01"


_ERROR_NAMES = {
    "100": "Segment sequence error",
    "101": "Required field missing",
    "102": "Data type error",
    "200": "Unsupported message type",
    "207": "Application internal error",
}


def refusal_ack(header: Header | None, refused: Refused, application: str, facility: str, control_id: str) -> str:
    return ack(header, refused.code, refused.reason, application, facility, control_id, refused.error_code)


def ack_of(answer: bytes, control_id: str) -> tuple[str | None, str]:
    """(MSA-1 acknowledgment code, MSA-3 text) of a receiver's answer to the message `control_id`; code None when
    the answer is not an ACK to that message."""
    try:
        msg, _ = read_header(answer)
    except Refused as refused:
        return None, refused.reason
    code, acknowledged = _get(msg, "MSA.F1").upper(), _get(msg, "MSA.F2")
    if not code:
        return None, "no MSA segment"
    if acknowledged != control_id:
        return None, f"MSA-2 {acknowledged!r} acknowledges another message"
    return code, _get(msg, "MSA.F3") or _get(msg, "ERR.F8")
