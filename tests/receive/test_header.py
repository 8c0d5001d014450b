"""Header reading and file meta encoding on the receive path."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import pydicom.data
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ImplicitVRLittleEndian

from dicomnode.demo.synthetic import SeriesSpec, ct_slice
from dicomnode.dicom.filemeta import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME, file_meta_bytes
from dicomnode.receive.header import read_header
from dicomnode.receive.wellformed import MalformedDataset, check_complete
from tests.support.dicom_files import dataset_bytes


@pytest.mark.parametrize(("sop", "ae"), [("1.2.3.4", "CT1"), ("1.2.3.45", "ODD_AE"), ("1.2.3", "")])
def test_file_meta_matches_pydicom(sop: str, ae: str) -> None:
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = "1.2.840.10008.1.2.1"
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    if ae:
        meta.SourceApplicationEntityTitle = ae
    expected = io.BytesIO()
    expected.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(expected, meta, enforce_standard=True)
    ours = file_meta_bytes("1.2.840.10008.5.1.4.1.1.2", sop, "1.2.840.10008.1.2.1", ae)
    assert ours == expected.getvalue()


@pytest.mark.parametrize("ts", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian])
def test_read_header_in_each_syntax(ts: str, tmp_path: Path) -> None:
    spec = SeriesSpec(rows=8, columns=8, priority="stat", reason="trauma", body_part="CHEST")
    ds = ct_slice(spec, 3)
    ds.file_meta.TransferSyntaxUID = ts
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True, little_endian=ts.is_little_endian, implicit_vr=ts.is_implicit_VR)
    h = read_header(dataset_bytes(path), ts)
    assert (h.study_instance_uid, h.series_instance_uid) == (spec.study_uid, spec.series_uid)
    assert h.sop_instance_uid == ds.SOPInstanceUID
    assert h.requested_procedure_priority == "STAT"  # normalised to upper case
    assert (h.reason_for_requested_procedure, h.body_part_examined, h.instance_number) == (
        "trauma",
        "CHEST",
        "4",
    )
    assert h.patient_name == spec.patient.name


def _pydicom_text(ds, keyword: str) -> str | None:  # noqa: ANN001
    value = ds.get(keyword)
    if value is None or value == "" or isinstance(value, bytes):
        return None
    text = "\\".join(str(v) for v in value) if isinstance(value, MultiValue) else str(value)
    return text.strip().strip("\x00").strip() or None


_COMPARED = {
    "sop_instance_uid": "SOPInstanceUID",
    "study_instance_uid": "StudyInstanceUID",
    "series_instance_uid": "SeriesInstanceUID",
    "patient_name": "PatientName",
    "birth_date": "PatientBirthDate",
    "accession_number": "AccessionNumber",
    "study_description": "StudyDescription",
    "series_description": "SeriesDescription",
    "modality": "Modality",
    "body_part_examined": "BodyPartExamined",
    "series_number": "SeriesNumber",
    "instance_number": "InstanceNumber",
    "station_name": "StationName",
}


def _real_files() -> list[Path]:
    """pydicom's bundled test files (real scanners' headers, every syntax, the character set samples)."""
    root = Path(pydicom.data.__file__).parent
    files = [*root.glob("test_files/**/*.dcm"), *root.glob("charset_files/*.dcm")]
    return sorted(p for p in files if p.stat().st_size < 20 * 1024**2)


def test_read_header_agrees_with_pydicom_on_real_files() -> None:
    compared = 0
    for path in _real_files():
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            ts = ds.file_meta.TransferSyntaxUID
        except Exception:  # noqa: BLE001 - not a Part 10 file pydicom reads: nothing to compare
            continue
        data = dataset_bytes(path)
        try:
            check_complete(data, ts)
        except MalformedDataset:  # refused before any header is read (e.g. implicit VR sent as explicit)
            continue
        if "SOPInstanceUID" not in ds:
            continue
        h = read_header(data, ts)
        ours = {attribute: getattr(h, attribute) for attribute in _COMPARED}
        assert ours == {a: _pydicom_text(ds, k) for a, k in _COMPARED.items()}, path.name
        compared += 1
    assert compared > 60
