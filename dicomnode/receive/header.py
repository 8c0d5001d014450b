"""Read the attributes the catalog needs from a received data set, without touching pixels."""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pydicom
from pydicom.charset import convert_encodings, decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.tag import Tag
from pydicom.valuerep import PersonName

from dicomnode.errors import DicomnodeError
from dicomnode.receive.wellformed import ITEM, ITEM_END, LONG_VRS, SEQUENCE_END, UNDEFINED, inflated

# Never warn with attribute values: warnings reach logs, and values can be PHI.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

_KEYWORDS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "IssuerOfPatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyDate",
    "StudyDescription",
    "RequestedProcedurePriority",
    "ReasonForTheRequestedProcedure",
    "RequestAttributesSequence",
    "Modality",
    "BodyPartExamined",
    "SeriesDescription",
    "SeriesNumber",
    "StationName",
    "InstanceNumber",
    "SpecificCharacterSet",
]


class UnreadableDataset(DicomnodeError, ValueError):
    """The received bytes do not decode as a DICOM data set in the negotiated syntax."""


@dataclass(frozen=True)
class InstanceHeader:
    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_instance_uid: str | None
    series_instance_uid: str | None
    patient_id: str
    issuer_of_patient_id: str
    patient_name: str | None
    birth_date: str | None
    sex: str | None
    accession_number: str | None
    study_date: str | None
    study_description: str | None
    requested_procedure_priority: str | None
    reason_for_requested_procedure: str | None
    modality: str | None
    body_part_examined: str | None
    series_description: str | None
    series_number: str | None
    station_name: str | None
    instance_number: str | None


def read_header(dataset: bytes | memoryview, transfer_syntax_uid: str) -> InstanceHeader:
    """Decode the catalog attributes of raw data set bytes; raise UnreadableDataset if they are not one.

    Walks the top-level element headers (values skipped, no copy), stops at Pixel Data and decodes only the
    wanted values. pydicom's reader did the same in 0.7 ms per CT instance, a third of a receive.
    """
    try:
        dataset, ts = inflated(dataset, transfer_syntax_uid)
        scanner = _Scanner(dataset, implicit=ts.is_implicit_VR, little=ts.is_little_endian)
        raw = scanner.elements(0, len(dataset), _WANTED)
        encodings = _encodings(raw.pop("SpecificCharacterSet", None))
        values = {k: _decoded(vr, value, encodings) for k, (vr, value) in raw.items() if vr != "SQ"}
        sequence = raw.get("RequestAttributesSequence")
        item = scanner.first_item(sequence[1], _REQUEST_WANTED) if sequence is not None else {}
        request = {k: _decoded(vr, value, encodings) for k, (vr, value) in item.items()}
        return _header_of(values, request)
    except (struct.error, IndexError, ValueError, LookupError, UnicodeError) as exc:
        raise UnreadableDataset(f"data set cannot be decoded: {type(exc).__name__}") from None


_WANTED = {int(Tag(k)): k for k in _KEYWORDS}
_REQUEST_WANTED = {int(Tag(k)): k for k in ("RequestedProcedurePriority", "ReasonForTheRequestedProcedure")}
_PIXEL_DATA_GROUP = 0x7FE00000
_TEXT_VRS = {"SH", "LO", "ST", "LT", "UC", "UT", "PN"}  # in the Specific Character Set; the others are ASCII
_DELIMITERS = {"ST": set(), "LT": set(), "UT": set()}
_MULTI_VALUE = {0x5C}

Element = tuple[str, memoryview | bytes]  # VR, value


class _Scanner:
    """Element headers of a data set in its transfer syntax: wanted values by keyword, the rest skipped."""

    def __init__(self, buf: bytes | memoryview, implicit: bool, little: bool) -> None:
        self.buf = memoryview(buf)
        self.implicit = implicit
        self.little = little
        order = "<" if little else ">"
        self.tag_length = struct.Struct(order + "HHL")  # implicit header, and items
        self.tag_vr = struct.Struct(order + "HH2s")
        self.u16 = struct.Struct(order + "H")
        self.u32 = struct.Struct(order + "L")

    def elements(self, pos: int, end: int, wanted: dict[int, str]) -> dict[str, Element]:
        """The wanted elements between pos and end (or an item delimiter), stopping at Pixel Data."""
        found: dict[str, Element] = {}
        while pos < end:
            tag, vr, length, pos = self._header(pos)
            if tag >= _PIXEL_DATA_GROUP or tag == ITEM_END:
                break
            start = pos
            pos = self._skip_undefined(pos) if length == UNDEFINED else pos + length
            if pos > len(self.buf):
                raise IndexError("value runs past the end")
            keyword = wanted.get(tag)
            if keyword is not None:
                found[keyword] = (vr, self.buf[start:pos])
        return found

    def first_item(self, sequence: memoryview | bytes, wanted: dict[int, str]) -> dict[str, Element]:
        """The wanted elements of a sequence value's first item."""
        inner = _Scanner(sequence, self.implicit, self.little)
        if len(sequence) < 8:
            return {}
        tag_group, tag_element, length = inner.tag_length.unpack_from(inner.buf, 0)
        if (tag_group << 16 | tag_element) != ITEM:
            return {}
        end = len(sequence) if length == UNDEFINED else 8 + length
        return inner.elements(8, end, wanted)

    def _header(self, pos: int) -> tuple[int, str, int, int]:
        buf = self.buf
        if self.implicit or self.u16.unpack_from(buf, pos)[0] == 0xFFFE:  # items and delimiters have no VR
            group, element, length = self.tag_length.unpack_from(buf, pos)
            tag = group << 16 | element
            return tag, _implicit_vr(tag), length, pos + 8
        group, element, raw_vr = self.tag_vr.unpack_from(buf, pos)
        tag, vr = group << 16 | element, raw_vr.decode("ascii")
        if raw_vr in LONG_VRS:
            return tag, (_implicit_vr(tag) if vr == "UN" else vr), self.u32.unpack_from(buf, pos + 8)[0], pos + 12
        return tag, vr, self.u16.unpack_from(buf, pos + 6)[0], pos + 8

    def _skip_undefined(self, pos: int) -> int:
        """After a value of undefined length (a sequence: items up to the sequence delimiter)."""
        while True:
            group, element, length = self.tag_length.unpack_from(self.buf, pos)
            tag, pos = group << 16 | element, pos + 8
            if tag == SEQUENCE_END:
                return pos
            if tag != ITEM:
                raise ValueError("not an item in a sequence")
            pos = self._skip_item(pos) if length == UNDEFINED else pos + length

    def _skip_item(self, pos: int) -> int:
        while True:
            tag, _, length, pos = self._header(pos)
            if tag == ITEM_END:
                return pos
            pos = self._skip_undefined(pos) if length == UNDEFINED else pos + length


def _implicit_vr(tag: int) -> str:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _encodings(element: Element | None) -> list[str]:
    if element is None:
        return convert_encodings(None)
    terms = [t.strip() for t in bytes(element[1]).decode("ascii", "replace").split("\\")]
    return convert_encodings(terms or None)


def _decoded(vr: str, value: memoryview | bytes, encodings: list[str]) -> str | None:
    raw = bytes(value)
    if vr == "PN":  # pydicom's rules for component groups and their delimiters
        text = str(PersonName(raw.rstrip(b" \x00"), encodings))
    elif vr in _TEXT_VRS:
        text = decode_bytes(raw, encodings, _DELIMITERS.get(vr, _MULTI_VALUE))
    elif vr in ("OB", "OW", "UN"):
        return None  # not text: pydicom would give bytes, which the catalog never takes
    else:
        text = raw.decode("latin-1")
    text = text.strip().strip("\x00").strip()
    return text or None


def _header_of(values: dict[str, str | None], request: dict[str, str | None]) -> InstanceHeader:
    """`request`: the first Request Attributes item's values, where the order's attributes may be instead."""
    get = values.get
    return InstanceHeader(
        sop_class_uid=get("SOPClassUID"),
        sop_instance_uid=get("SOPInstanceUID"),
        study_instance_uid=get("StudyInstanceUID"),
        series_instance_uid=get("SeriesInstanceUID"),
        patient_id=get("PatientID") or "",
        issuer_of_patient_id=get("IssuerOfPatientID") or "",
        patient_name=get("PatientName"),
        birth_date=get("PatientBirthDate"),
        sex=get("PatientSex"),
        accession_number=get("AccessionNumber"),
        study_date=get("StudyDate"),
        study_description=get("StudyDescription"),
        requested_procedure_priority=_upper(
            get("RequestedProcedurePriority") or request.get("RequestedProcedurePriority")
        ),
        reason_for_requested_procedure=get("ReasonForTheRequestedProcedure")
        or request.get("ReasonForTheRequestedProcedure"),
        modality=get("Modality"),
        body_part_examined=get("BodyPartExamined"),
        series_description=get("SeriesDescription"),
        series_number=get("SeriesNumber"),
        station_name=get("StationName"),
        instance_number=get("InstanceNumber"),
    )


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None
