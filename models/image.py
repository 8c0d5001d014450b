"""The image volume handed to a model: pixels in physical units plus the geometry that places them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ImageVolume:
    """A series as one array, (slices, rows, columns), sorted along the slice normal.

    `array` holds modality values (Hounsfield units for CT) as float32.
    `spacing_mm` is (between slices, between rows, between columns).
    `affine` maps (slice, row, column, 1) voxel indices to patient LPS millimetres.
    `slice_uids[k]` is the SOP Instance UID the k-th slice came from, so findings
    can reference their source images. A projection image is one slice.
    """

    array: np.ndarray
    spacing_mm: tuple[float, float, float]
    affine: np.ndarray
    series_uid: str
    modality: str
    slice_uids: tuple[str, ...]
    spacing_known: bool = True  # False: the header gave no pixel spacing (1 mm assumed): no size is reported

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"array must be (slices, rows, columns), got shape {self.array.shape}")
        if len(self.slice_uids) != self.array.shape[0]:
            raise ValueError(f"{len(self.slice_uids)} slice UIDs for {self.array.shape[0]} slices")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0


def axial_affine(spacing_mm: tuple[float, float, float]) -> np.ndarray:
    """The affine of an axial stack at the origin: slices along +S, rows along +P, columns along +L (LPS)."""
    affine = np.zeros((4, 4))
    affine[2, 0], affine[1, 1], affine[0, 2], affine[3, 3] = *spacing_mm, 1.0
    return affine


def central_field(x: Any) -> Any:
    """The central field of images (numpy or torch, rows and columns last): the middle 60% of the rows and 50%
    of the columns, where a chest film shows its lungs and mediastinum whatever lies at its edges. At least one
    row and column."""
    rows, cols = x.shape[-2:]
    return x[..., int(rows * 0.2) : max(int(rows * 0.8), 1), int(cols * 0.25) : max(int(cols * 0.75), 1)]
