"""Building test DICOM files, including deliberately broken ones."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom.dsutils import split_dataset

from dicomnode.demo.synthetic import SeriesSpec, ct_slice, write_ct_series

DISTINCT_PHI = {
    "name": "ZZPHINAME^QQSENTINEL",
    "patient_id": "PIDSENTINEL4711",
    "birth_date": "19230405",
    "accession": "ACCSENT99",
}


def series(tmp: Path, n: int = 5, **kwargs) -> tuple[SeriesSpec, list[Path]]:  # noqa: ANN003
    spec = SeriesSpec(n_slices=n, **kwargs)
    return spec, write_ct_series(spec, tmp / spec.series_uid)


def dataset_bytes(path: Path) -> bytes:
    """The data set part of a Part 10 file (everything after the File Meta Information)."""
    _, offset = split_dataset(path)
    return path.read_bytes()[offset:]


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def with_raw_dataset(template: Path, raw: bytes, out: Path) -> Path:
    """Keep the template's file meta, replace the data set bytes with `raw` (sent as-is)."""
    _, offset = split_dataset(template)
    out.write_bytes(template.read_bytes()[:offset] + raw)
    return out


def one_instance(tmp: Path, name: str = "one.dcm", **changes: object) -> Path:
    """A small CT instance, with attributes (and file meta keys prefixed meta_) changed."""
    ds = ct_slice(SeriesSpec(rows=16, columns=16), 0)
    meta_changes = {k[5:]: v for k, v in changes.items() if k.startswith("meta_")}
    for key, value in changes.items():
        if not key.startswith("meta_"):
            setattr(ds, key, value)
    path = save(ds, tmp / name)
    if meta_changes:  # pydicom re-derives the meta UIDs on save; put the wrong ones back
        meta = dcmread(path, stop_before_pixels=True).file_meta
        for key, value in meta_changes.items():
            setattr(meta, key, value)
        header = io.BytesIO()
        header.write(b"\x00" * 128 + b"DICM")
        write_file_meta_info(header, meta, enforce_standard=False)
        path.write_bytes(header.getvalue() + dataset_bytes(path))
    return path


def read(path: Path) -> Dataset:
    return dcmread(path)


def same_instance_as(first: Path, tmp: Path, name: str, **changes: object) -> Path:
    """Another file carrying the same Study/Series/SOP Instance UIDs as `first`."""
    ds = dcmread(first, stop_before_pixels=True)
    return one_instance(
        tmp,
        name,
        SOPInstanceUID=ds.SOPInstanceUID,
        meta_MediaStorageSOPInstanceUID=ds.SOPInstanceUID,
        StudyInstanceUID=ds.StudyInstanceUID,
        SeriesInstanceUID=ds.SeriesInstanceUID,
        **changes,
    )
