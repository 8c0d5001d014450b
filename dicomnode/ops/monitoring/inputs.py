"""The few numbers a run records about what it was given (headers of the first analysed series and intensities of
its volume), for the input-drift monitor. Acquisition facts only: no patient, no dates, no free text beyond the
equipment's names and the kernel."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom import Dataset
from pydicom.multival import MultiValue
from sqlalchemy import Connection

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import InputSummary
from models.image import ImageVolume

NUMERIC = (
    "slice_thickness_mm",
    "pixel_spacing_mm",
    "kvp",
    "slices",
    "intensity_mean",
    "intensity_std",
    "intensity_p05",
    "intensity_p95",
)
CATEGORICAL = ("manufacturer", "manufacturer_model", "kernel", "contrast")
FEATURES = NUMERIC + CATEGORICAL
_SAMPLE = 200_000  # voxels: the intensity figures of a 300-slice CT from a strided sample, in milliseconds

_inputs = InputSummary.__table__


def summarise(loaded: list[tuple[ImageVolume, list[Dataset]]]) -> dict[str, Any]:
    volume, sources = loaded[0]
    header = sources[0]
    voxels = volume.array.ravel()
    sample = voxels[:: max(1, voxels.size // _SAMPLE)].astype(np.float64)
    p05, p95 = np.percentile(sample, [5, 95]) if sample.size else (None, None)
    return {
        "slice_thickness_mm": _number(header, "SliceThickness"),
        "pixel_spacing_mm": _spacing(header),
        "kvp": _number(header, "KVP"),
        "slices": int(volume.array.shape[0]),
        "intensity_mean": _rounded(sample.mean() if sample.size else None),
        "intensity_std": _rounded(sample.std() if sample.size else None),
        "intensity_p05": _rounded(p05),
        "intensity_p95": _rounded(p95),
        "manufacturer": _text(header, "Manufacturer"),
        "manufacturer_model": _text(header, "ManufacturerModelName"),
        "kernel": _text(header, "ConvolutionKernel"),
        "contrast": "with" if _text(header, "ContrastBolusAgent") else "without",
    }


def save_inputs(
    conn: Connection, job_id: int, study_pk: int, model: str, model_version: str, features: dict[str, Any]
) -> None:
    """One row per job (a re-run replaces it). Caller commits."""
    values = {"study_fk": study_pk, "model": model, "model_version": model_version, "at": utcnow()}
    stmt = insert_for(conn.dialect.name, _inputs).values(job_fk=job_id, features=features, **values)
    conn.execute(stmt.on_conflict_do_update(index_elements=["job_fk"], set_={**values, "features": features}))


def _number(ds: Dataset, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else round(float(value), 3)
    except (TypeError, ValueError):
        return None


def _spacing(ds: Dataset) -> float | None:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        return round(float(spacing[0]), 4) if spacing else None
    except (TypeError, ValueError, IndexError):
        return None


def _text(ds: Dataset, keyword: str) -> str | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    text = "\\".join(map(str, value)) if isinstance(value, list | tuple | MultiValue) else str(value)
    return text.strip()[:64] or None


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 2)
