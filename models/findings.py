"""What a model reports. Torch-free and DICOM-free, so the node may import it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from models.manifest import Code

UNITS = {"ml": "milliliter", "mm": "millimeter", "mm2": "square millimeter"}  # UCUM codes we report in


def centre_slice(bbox: Sequence[int], centre: Sequence[float]) -> int:
    """The slice (z index of the analysed volume) that shows a finding: its centre of mass, within its box. Its SR
    rectangle and its key image are drawn there."""
    z0, z1 = bbox[0], bbox[3]
    return min(max(int(round(centre[0])), z0), z1 - 1)


@dataclass(frozen=True)
class Measurement:
    name: str  # e.g. "volume", "longest axial diameter", "area"
    value: float
    unit: str  # UCUM code, one of UNITS

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"unit must be one of {sorted(UNITS)} (UCUM), got {self.unit!r}")
        if not np.isfinite(self.value) or self.value < 0:
            raise ValueError(f"measurement {self.name} must be a finite value >= 0, got {self.value}")


@dataclass(frozen=True)
class Finding:
    """One detected abnormality in one image volume.

    Locations are in voxel indices of the analysed volume, z indexing
    `ImageVolume.slice_uids`: `bbox` is (z0, y0, x0, z1, y1, x1) with the upper
    bounds exclusive; `centre` is the region's centre of mass (z, y, x).
    `mask`, from segmenting models, is a boolean array of the bbox's shape.
    """

    label: str
    code: Code
    probability: float  # calibrated, 0..1
    bbox: tuple[int, int, int, int, int, int]
    centre: tuple[float, float, float]
    measurements: tuple[Measurement, ...] = ()
    mask: np.ndarray | None = field(default=None, compare=False, repr=False)
    site: Code | None = None  # anatomy, from the model's manifest

    def __post_init__(self) -> None:
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {self.probability}")
        z0, y0, x0, z1, y1, x1 = self.bbox
        if not (0 <= z0 < z1 and 0 <= y0 < y1 and 0 <= x0 < x1):
            raise ValueError(f"bbox must be (z0, y0, x0, z1, y1, x1) with lower < upper bounds, got {self.bbox}")
        if not all(lo <= c < hi for c, lo, hi in zip(self.centre, self.bbox[:3], self.bbox[3:], strict=True)):
            raise ValueError(f"centre {self.centre} lies outside bbox {self.bbox}")
        if self.mask is not None and self.mask.shape != (z1 - z0, y1 - y0, x1 - x0):
            raise ValueError(f"mask shape {self.mask.shape} does not match bbox {self.bbox}")

    @property
    def centre_slice(self) -> int:
        return centre_slice(self.bbox, self.centre)

    def measurement(self, name: str) -> float | None:
        return next((m.value for m in self.measurements if m.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """Everything but the mask, in plain JSON types."""
        return {
            "label": self.label,
            "code": self.code.model_dump(),
            "site": self.site.model_dump() if self.site else None,
            "probability": self.probability,
            "bbox": list(self.bbox),
            "centre": list(self.centre),
            "measurements": [{"name": m.name, "value": m.value, "unit": m.unit} for m in self.measurements],
        }
