"""Read the attributes the catalog needs from a received data set, without touching pixels."""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag

from dicomnode import __version__
from dicomnode.receive.wellformed import inflated

# Ours, from the 2.25 (UUID) arc: identifies files this node wrote.
IMPLEMENTATION_CLASS_UID = "2.25.137038125948464394958147018461385473501"
IMPLEMENTATION_VERSION_NAME = ("DICOMNODE_" + __version__.replace(".", ""))[:16]

# Never warn with attribute values: warnings reach logs, and values can be PHI.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE

_KEYWORDS = [
    "SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID",
    "PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate", "PatientSex",
    "AccessionNumber", "StudyDate", "StudyDescription", "RequestedProcedurePriority",
    "ReasonForTheRequestedProcedure", "RequestAttributesSequence", "Modality",
    "BodyPartExamined", "SeriesDescription", "SeriesNumber", "StationName", "InstanceNumber",
    "SpecificCharacterSet",
]  # fmt: skip
_TAGS = {Tag(k) for k in _KEYWORDS}  # a set: pydicom tests each element with `in`


class UnreadableDataset(ValueError):
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


def file_meta_bytes(sop_class_uid: str, sop_instance_uid: str, transfer_syntax_uid: str, source_ae: str) -> bytes:
    """Preamble, 'DICM' and the File Meta Information (PS3.10 7.1) for a received instance.

    Encoded here rather than by pydicom's writer, which costs about a millisecond
    per instance on the receive path; tests compare the bytes with pydicom's.
    """
    elements = [
        _element(0x0001, b"OB", b"\x00\x01"),
        _element(0x0002, b"UI", _uid_value(sop_class_uid)),
        _element(0x0003, b"UI", _uid_value(sop_instance_uid)),
        _element(0x0010, b"UI", _uid_value(transfer_syntax_uid)),
        _element(0x0012, b"UI", _uid_value(IMPLEMENTATION_CLASS_UID)),
        _element(0x0013, b"SH", _padded(IMPLEMENTATION_VERSION_NAME.encode("ascii"), b" ")),
    ]
    if source_ae:
        elements.append(_element(0x0016, b"AE", _padded(source_ae.encode("ascii", "replace"), b" ")))
    body = b"".join(elements)
    group_length = _GROUP_LENGTH_HEADER + struct.pack("<L", len(body))
    return _PREAMBLE + group_length + body


_PREAMBLE = b"\x00" * 128 + b"DICM"
_GROUP_LENGTH_HEADER = struct.pack("<HH", 0x0002, 0x0000) + b"UL" + struct.pack("<H", 4)


def _element(element: int, vr: bytes, value: bytes) -> bytes:
    tag = struct.pack("<HH", 0x0002, element)
    if vr == b"OB":
        return tag + vr + b"\x00\x00" + struct.pack("<L", len(value)) + value
    return tag + vr + struct.pack("<H", len(value)) + value


def _padded(value: bytes, pad: bytes) -> bytes:
    return value + pad if len(value) % 2 else value


def _uid_value(uid: str) -> bytes:
    return _padded(uid.encode("ascii"), b"\x00")


def read_header(dataset: bytes, transfer_syntax_uid: str) -> InstanceHeader:
    """Decode the catalog attributes of raw data set bytes; raise UnreadableDataset if they are not one.

    Reads in place (no copy of the pixel data) and stops at Pixel Data.
    """
    try:
        dataset, ts = inflated(dataset, transfer_syntax_uid)
        ds = read_dataset(
            io.BytesIO(dataset),
            is_implicit_VR=ts.is_implicit_VR,
            is_little_endian=ts.is_little_endian,
            stop_when=_at_pixel_data,
            specific_tags=_TAGS,  # type: ignore[arg-type]
        )
        return _header_of(ds)
    except Exception as exc:  # pydicom raises many types on garbage; all mean the same here
        raise UnreadableDataset(f"data set cannot be decoded: {type(exc).__name__}") from None


def _at_pixel_data(tag: BaseTag, vr: str | None, length: int) -> bool:
    return tag >= 0x7FE00000


def _header_of(ds: Dataset) -> InstanceHeader:
    request = _first_item(ds, "RequestAttributesSequence")
    return InstanceHeader(
        sop_class_uid=_text(ds, "SOPClassUID"),
        sop_instance_uid=_text(ds, "SOPInstanceUID"),
        study_instance_uid=_text(ds, "StudyInstanceUID"),
        series_instance_uid=_text(ds, "SeriesInstanceUID"),
        patient_id=_text(ds, "PatientID") or "",
        issuer_of_patient_id=_text(ds, "IssuerOfPatientID") or "",
        patient_name=_text(ds, "PatientName"),
        birth_date=_text(ds, "PatientBirthDate"),
        sex=_text(ds, "PatientSex"),
        accession_number=_text(ds, "AccessionNumber"),
        study_date=_text(ds, "StudyDate"),
        study_description=_text(ds, "StudyDescription"),
        requested_procedure_priority=_upper(
            _text(ds, "RequestedProcedurePriority") or _text(request, "RequestedProcedurePriority")
        ),
        reason_for_requested_procedure=_text(ds, "ReasonForTheRequestedProcedure")
        or _text(request, "ReasonForTheRequestedProcedure"),
        modality=_text(ds, "Modality"),
        body_part_examined=_text(ds, "BodyPartExamined"),
        series_description=_text(ds, "SeriesDescription"),
        series_number=_text(ds, "SeriesNumber"),
        station_name=_text(ds, "StationName"),
        instance_number=_text(ds, "InstanceNumber"),
    )


def _first_item(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _text(ds: Dataset | None, keyword: str) -> str | None:
    if ds is None:
        return None
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, bytes | list | pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value) if not isinstance(value, bytes) else None
        if value is None:
            return None
    text = str(value).strip().strip("\x00").strip()
    return text or None


def _upper(value: str | None) -> str | None:
    return value.upper() if value else None
