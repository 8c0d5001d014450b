"""Synthetic DICOM studies for tests, benchmarks and the demo. No real patient data anywhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from dicomnode.dicom.filemeta import IMPLEMENTATION_CLASS_UID
from dicomnode.dicom.uids import derived_uid


@dataclass
class SyntheticPatient:
    name: str = "SYNTHETIC^PATIENT"
    patient_id: str = "SYN0001"
    birth_date: str = "19700101"
    sex: str = "O"


@dataclass
class SeriesSpec:
    n_slices: int = 10
    rows: int = 64
    columns: int = 64
    modality: str = "CT"
    body_part: str = "HEAD"
    description: str = "Synthetic CT"
    priority: str | None = "ROUTINE"
    reason: str | None = None
    accession: str = "SYNACC0001"
    study_date: str = "20260101"
    station_name: str = "SYNCT01"
    patient: SyntheticPatient = field(default_factory=SyntheticPatient)
    study_uid: str = field(default_factory=generate_uid)
    series_uid: str = field(default_factory=generate_uid)
    slice_thickness_mm: float = 1.0
    pixel_spacing_mm: float = 0.5
    seed: int = 0
    lesion_hu: float | None = None  # a sphere of this density at the volume centre (e.g. 80: fresh blood)
    lesion_radius_mm: float = 4.0


def ct_slice(spec: SeriesSpec, index: int, pixels: np.ndarray | None = None) -> Dataset:
    """One CT Image Storage instance of the series `spec`, explicit VR little endian."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    sop_uid = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid

    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = spec.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "120000"
    ds.AccessionNumber = spec.accession
    ds.Modality = spec.modality
    ds.Manufacturer = "dicomnode synthetic"
    ds.StationName = spec.station_name
    ds.StudyDescription = f"Synthetic {spec.body_part.title()} study"
    ds.SeriesDescription = spec.description
    ds.PatientName = spec.patient.name
    ds.PatientID = spec.patient.patient_id
    ds.PatientBirthDate = spec.patient.birth_date
    ds.PatientSex = spec.patient.sex
    ds.BodyPartExamined = spec.body_part
    ds.SliceThickness = spec.slice_thickness_mm
    ds.KVP = 120
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index) * spec.slice_thickness_mm]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = derived_uid("frame-of-reference", spec.study_uid)
    ds.PositionReferenceIndicator = ""
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.PixelSpacing = [spec.pixel_spacing_mm, spec.pixel_spacing_mm]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.WindowCenter = 40
    ds.WindowWidth = 80
    if spec.priority:
        ds.RequestedProcedurePriority = spec.priority
    if spec.reason:
        ds.ReasonForTheRequestedProcedure = spec.reason
    if pixels is None:
        pixels = _phantom_slice(spec, index)
    ds.PixelData = pixels.astype("<i2").tobytes()
    return ds


def write_ct_series(spec: SeriesSpec, directory: Path) -> list[Path]:
    """Write the series as Part 10 files named by instance number; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(spec.n_slices):
        path = directory / f"{i + 1:05d}.dcm"
        ct_slice(spec, i).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def volume_series(hu: np.ndarray, spacing_mm: tuple[float, ...], **fields: Any) -> SeriesSpec:
    """The series a (slices, rows, columns) volume with (slice, row, column) spacing is written as; square
    pixels of the row spacing."""
    n_slices, rows, columns = hu.shape
    return SeriesSpec(
        n_slices=n_slices,
        rows=rows,
        columns=columns,
        slice_thickness_mm=spacing_mm[0],
        pixel_spacing_mm=spacing_mm[1],
        **fields,
    )


def write_volume_series(spec: SeriesSpec, hu: np.ndarray, directory: Path) -> list[Path]:
    """Write a (slices, rows, columns) Hounsfield-unit volume, e.g. a CT head phantom, as the series `spec`
    (whose rows, columns, slice count and spacing must match the volume)."""
    if hu.shape != (spec.n_slices, spec.rows, spec.columns):
        raise ValueError(f"volume {hu.shape} does not match the series ({spec.n_slices}, {spec.rows}, {spec.columns})")
    directory.mkdir(parents=True, exist_ok=True)
    stored = np.clip(np.round(hu) + 1024, -32768, 32767)
    paths = []
    for i in range(spec.n_slices):
        path = directory / f"{i + 1:05d}.dcm"
        ct_slice(spec, i, stored[i]).save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def radiograph(spec: SeriesSpec, image: np.ndarray, monochrome1: bool = False) -> Dataset:
    """A Digital X-Ray (For Presentation) instance from a 0..1 image (brighter = denser), 12 bits stored.
    `spec` gives identity, order and pixel spacing; rows and columns come from the image."""
    ds = ct_slice(SeriesSpec(**{**spec.__dict__, "rows": 1, "columns": 1}), 0, np.zeros((1, 1)))
    for key in (
        "SliceThickness",
        "KVP",
        "ImagePositionPatient",
        "ImageOrientationPatient",
        "FrameOfReferenceUID",
        "PositionReferenceIndicator",
        "RescaleIntercept",
        "RescaleSlope",
        "RescaleType",
    ):
        delattr(ds, key)
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    ds.Modality = spec.modality
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.ViewPosition = "PA"
    ds.ImagerPixelSpacing = [spec.pixel_spacing_mm, spec.pixel_spacing_mm]
    ds.Rows, ds.Columns = image.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    values = np.clip(image, 0.0, 1.0) * 4095
    if monochrome1:
        values = 4095 - values
    ds.PhotometricInterpretation = "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1 if monochrome1 else -1  # -1: denser (less beam) is a higher value
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
    ds.PresentationLUTShape = "INVERSE" if monochrome1 else "IDENTITY"
    ds.LossyImageCompression, ds.BurnedInAnnotation = "00", "NO"
    ds.DetectorType, ds.PositionerType, ds.AcquisitionContextSequence = "", "", []
    ds.ReferringPhysicianName = ""
    ds.PatientOrientation = ["L", "F"]  # PA: columns run to the patient's left, rows to the feet
    ds.ImageLaterality = "U"
    region = Dataset()
    region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning = "51185008", "SCT", "Chest"
    ds.AnatomicRegionSequence = [region]
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = np.round(values).astype("<u2").tobytes()
    return ds


def _phantom_slice(spec: SeriesSpec, index: int) -> np.ndarray:
    """A water cylinder in air with noise: enough structure for compression and viewers."""
    rng = np.random.default_rng(spec.seed * 100_003 + index)
    y, x = np.ogrid[: spec.rows, : spec.columns]
    cy, cx = spec.rows / 2, spec.columns / 2
    inside = (y - cy) ** 2 + (x - cx) ** 2 <= (0.4 * min(spec.rows, spec.columns)) ** 2
    img = np.where(inside, 1024 + 40, 0).astype(np.int16)
    if spec.lesion_hu is not None:
        dz_mm = (index - (spec.n_slices - 1) / 2) * spec.slice_thickness_mm
        r2_px = (spec.lesion_radius_mm**2 - dz_mm**2) / spec.pixel_spacing_mm**2
        img[(y - cy) ** 2 + (x - cx) ** 2 <= r2_px] = int(1024 + spec.lesion_hu)
    img += rng.normal(0, 10, img.shape).astype(np.int16)
    return img
