"""Read the attributes the catalog needs from a received data set, without touching pixels."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pydicom
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.tag import BaseTag, Tag

from dicomnode.errors import DicomnodeError
from dicomnode.receive.wellformed import inflated

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
_TAGS = {Tag(k) for k in _KEYWORDS}  # a set: pydicom tests each element with `in`


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

    Reads in place (no copy of the pixel data) and stops at Pixel Data.
    """
    try:
        dataset, ts = inflated(dataset, transfer_syntax_uid)
        with _Reader(dataset) as fp:
            ds = read_dataset(
                fp,
                is_implicit_VR=ts.is_implicit_VR,
                is_little_endian=ts.is_little_endian,
                stop_when=_at_pixel_data,
                specific_tags=_TAGS,  # type: ignore[arg-type]
            )
        return _header_of(ds)
    except Exception as exc:  # pydicom raises many types on garbage; all mean the same here
        raise UnreadableDataset(f"data set cannot be decoded: {type(exc).__name__}") from None


class _Reader(io.RawIOBase):
    """A file over bytes or a memoryview without copying it (io.BytesIO copies a memoryview whole, which for a
    mapped 2 GB instance is 2 GB); only what pydicom reads is copied."""

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        end = len(self._data) if size is None or size < 0 else min(self._pos + size, len(self._data))
        chunk = bytes(self._data[self._pos : end])
        self._pos = max(self._pos, end)
        return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: len(self._data)}[whence]
        self._pos = max(base + offset, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def close(self) -> None:
        self._data.release()
        super().close()


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
