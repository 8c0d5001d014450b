"""Build an ImageVolume from a stored series: sorted along the slice normal, in modality units, with geometry.

highdicom does the geometry (sorting along the normal, the regular-spacing
check, the affine); pydicom decodes and rescales each slice. This module adds
the projection-image case, the slice-to-instance mapping, and turns every way a
series can be unusable into one clear error.
"""

from __future__ import annotations

import struct
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from highdicom.spatial import get_volume_positions
from pydicom.errors import InvalidDicomError

from dicomnode.analysis.buffers import volume_array
from dicomnode.analysis.pixels import modality_values, read_instance
from dicomnode.errors import DicomnodeError
from models.image import ImageVolume
from models.orientation import Oblique, canonical_axes, reoriented_affine


class StudyUnreadable(DicomnodeError):
    """The stored images cannot be analysed as they are; retrying will not help. No patient data in the message."""


def load_series(paths: list[Path], series_uid: str) -> ImageVolume:
    return load_series_with_sources(paths, series_uid)[0]


def load_series_with_sources(paths: list[Path], series_uid: str) -> tuple[ImageVolume, list[pydicom.Dataset]]:
    """The volume, and the header of each of its slices in volume order (pixel data dropped): what SR and
    SEG reference and copy patient and study attributes from."""
    if not paths:
        raise StudyUnreadable(f"series {series_uid}: no stored instances")
    read = [_read(p) for p in paths]
    datasets = [ds for ds, _ in read]
    stored = {str(ds.SOPInstanceUID): pixels for ds, pixels in read if pixels is not None}
    _require_same(datasets, series_uid, stored)
    try:
        if "ImagePositionPatient" in datasets[0]:
            volume = _cross_sectional(datasets, series_uid, stored)
        else:
            volume = _projection(datasets, series_uid, stored)
    except StudyUnreadable:
        raise
    except (ValueError, NotImplementedError, RuntimeError, AttributeError, KeyError, TypeError) as exc:
        # pydicom and highdicom report undecodable pixel data and inconsistent geometry this way.
        raise StudyUnreadable(f"series {series_uid}: cannot build a volume: {type(exc).__name__}: {exc}") from exc
    by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
    sources = [by_uid[uid] for uid in volume.slice_uids]
    for ds in sources:
        if "PixelData" in ds:
            del ds.PixelData  # decoded into the volume already; keep only the header
    return volume, sources


def _read(path: Path) -> tuple[pydicom.Dataset, np.ndarray | None]:
    try:
        return read_instance(path)
    except (InvalidDicomError, OSError, ValueError, struct.error) as exc:
        raise StudyUnreadable(f"cannot read stored instance {path.name}: {type(exc).__name__}") from exc


def _require_same(datasets: list[pydicom.Dataset], series_uid: str, stored: dict[str, np.ndarray]) -> None:
    for attr in ("Rows", "Columns", "SOPClassUID"):
        values = {str(ds.get(attr)) for ds in datasets}
        if len(values) > 1:
            raise StudyUnreadable(f"series {series_uid}: mixed {attr} within the series ({len(values)} values)")
    if any("PixelData" not in ds and str(ds.SOPInstanceUID) not in stored for ds in datasets):
        raise StudyUnreadable(f"series {series_uid}: an instance has no pixel data")
    if any(int(ds.get("NumberOfFrames", 1) or 1) != 1 for ds in datasets):
        raise StudyUnreadable(f"series {series_uid}: multi-frame images are not supported yet")
    frames = {str(ds.get("FrameOfReferenceUID", "")) for ds in datasets}
    if len(frames) > 1:
        raise StudyUnreadable(
            f"series {series_uid}: {len(frames)} Frame of Reference UIDs within the series: its slices are not in "
            "one patient coordinate system, so they form no volume (and no segmentation could reference them)"
        )
    for charset in {_charset(ds) for ds in datasets}:
        unknown = [term for term in charset if term not in pydicom.charset.python_encoding]
        if unknown:
            raise StudyUnreadable(
                f"series {series_uid}: unknown Specific Character Set {', '.join(unknown)}: names and texts cannot "
                "be decoded, so results could not carry them faithfully"
            )


def _charset(ds: pydicom.Dataset) -> tuple[str, ...]:
    value = ds.get("SpecificCharacterSet", "")
    terms = [value] if isinstance(value, str) else list(value)
    return tuple(str(t).strip() for t in terms)


def _values(ds: pydicom.Dataset, stored: dict[str, np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """One image in modality units: read from its file's offset (native), else decoded by pydicom."""
    pixels = stored.get(str(ds.SOPInstanceUID))
    return modality_values(ds, ds.pixel_array if pixels is None else pixels, out)


def _positions(datasets: list[pydicom.Dataset]) -> tuple[float | None, list[int] | None]:
    """highdicom's get_series_volume_positions without its per-image IOD lookup (0.16 s of a 300-slice load;
    multi-frame images are refused before): the same orientation everywhere, then highdicom's own positions."""
    if len(datasets) == 1:
        return 1.0, [0]
    orientation = datasets[0].ImageOrientationPatient
    if any(ds.ImageOrientationPatient != orientation for ds in datasets[1:]):
        return None, None
    return get_volume_positions(
        image_positions=[ds.ImagePositionPatient for ds in datasets], image_orientation=orientation
    )


def _cross_sectional(datasets: list[pydicom.Dataset], series_uid: str, stored: dict[str, np.ndarray]) -> ImageVolume:
    if any("ImagePositionPatient" not in ds or "ImageOrientationPatient" not in ds for ds in datasets):
        raise StudyUnreadable(f"series {series_uid}: some slices lack ImagePositionPatient/ImageOrientationPatient")
    if not datasets[0].get("FrameOfReferenceUID"):
        raise StudyUnreadable(f"series {series_uid}: no Frame of Reference UID, so no patient coordinate system")
    spacing, positions = _positions(datasets)
    if spacing is None or positions is None:
        raise StudyUnreadable(
            f"series {series_uid}: {len(datasets)} slices are not one evenly spaced stack "
            "(a missing or duplicated slice, or mixed orientations)"
        )
    ordered = [datasets[positions.index(i)] for i in range(len(datasets))]
    if len({tuple(float(v) for v in ds.get("PixelSpacing", ())) for ds in ordered}) > 1:
        raise StudyUnreadable(f"series {series_uid}: mixed PixelSpacing within the series")
    first = ordered[0]
    array = volume_array((len(ordered), int(first.Rows), int(first.Columns)))  # every slice is written below
    geometry = hd.Volume.from_attributes(  # the affine only: the pixels are read below
        array=array,
        image_position=first.ImagePositionPatient,
        image_orientation=first.ImageOrientationPatient,
        pixel_spacing=first.PixelSpacing,
        spacing_between_slices=spacing,
        coordinate_system="PATIENT",
    )
    affine = np.asarray(geometry.affine, dtype=np.float64)
    if _slices_reversed(affine):  # read them the way 3D models do (models/orientation): no copy to reorient later
        ordered = ordered[::-1]
        affine = reoriented_affine(affine, array.shape, (0, 1, 2), (True, False, False))
    for k, ds in enumerate(ordered):  # highdicom's get_volume_from_series re-validates every image: 5x slower
        _values(ds, stored, out=array[k])
    return ImageVolume(
        array=array,
        spacing_mm=tuple(float(s) for s in geometry.spacing),
        affine=affine,
        series_uid=series_uid,
        modality=str(ordered[0].get("Modality", "")),
        slice_uids=tuple(str(ds.SOPInstanceUID) for ds in ordered),
    )


def _slices_reversed(affine: np.ndarray) -> bool:
    """The slices are the canonical S axis and run towards the feet (highdicom's order for the usual axial
    orientation). An oblique stack is left as it is: the scope gate says why no 3D model reads it."""
    try:
        order, flipped = canonical_axes(affine)
    except Oblique:
        return False
    return order[0] == 0 and flipped[0]


def _projection(datasets: list[pydicom.Dataset], series_uid: str, stored: dict[str, np.ndarray]) -> ImageVolume:
    """A radiograph: one image, no patient-space position. Analysed as a single slice."""
    if len(datasets) != 1:
        raise StudyUnreadable(
            f"series {series_uid}: {len(datasets)} images without ImagePositionPatient; only single projection "
            "images are analysed without patient geometry"
        )
    ds = datasets[0]
    pixel_spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    row_mm, col_mm = (float(v) for v in pixel_spacing or (1.0, 1.0))
    array = _values(ds, stored)
    if array.ndim != 2:
        raise StudyUnreadable(f"series {series_uid}: colour projection images are not supported")
    if ds.get("PhotometricInterpretation") == "MONOCHROME1":  # models see dense = bright, as MONOCHROME2
        array = array.max() + array.min() - array
    return ImageVolume(
        array=array[None],
        spacing_mm=(1.0, row_mm, col_mm),
        affine=np.diag([1.0, row_mm, col_mm, 1.0]),
        series_uid=series_uid,
        modality=str(ds.get("Modality", "")),
        slice_uids=(str(ds.SOPInstanceUID),),
        spacing_known=bool(pixel_spacing),
    )
