"""Image volumes for the model tests: an array in modality units on an axial grid, with made-up UIDs."""

from __future__ import annotations

import numpy as np

from models.image import ImageVolume, axial_affine


def as_volume(array: np.ndarray, spacing: tuple[float, float, float], modality: str = "CT") -> ImageVolume:
    return ImageVolume(
        array.astype(np.float32),
        spacing,
        axial_affine(spacing),
        "1.2.3",
        modality,
        tuple(f"1.2.3.{i}" for i in range(len(array))),
    )
