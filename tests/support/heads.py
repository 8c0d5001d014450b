"""Heads for the mask tests (growth, partial volume): a subdural crescent against the skull on 5 mm slices, and a
region's mask back on the whole grid."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

SPACING = (5.0, 1.0, 1.0)


def subdural_head(
    rng: np.random.Generator, shape: tuple[int, int, int] = (24, 192, 192), thickness_mm: float = 10.0
) -> tuple[np.ndarray, ...]:
    """A head (brain 35 HU in a 6 mm skull of 1000 HU, air outside) with a crescent of 70 HU blood against
    the inner table of its left side, blurred and noisy like a 5 mm scan. Returns the HU and the visible crescent:
    the blood the blur did not mix into bone (under 150 HU), as the phantoms' truth is."""
    z, y, x = np.meshgrid(
        *[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij"
    )
    r_brain = np.sqrt((z / 50) ** 2 + (y / 80) ** 2 + (x / 70) ** 2)
    r_skull = np.sqrt((z / 56) ** 2 + (y / 86) ** 2 + (x / 76) ** 2)
    brain, skull = r_brain <= 1.0, r_skull <= 1.0
    t = thickness_mm  # 10 mm unless told
    inner = np.sqrt((z / (50 - t)) ** 2 + (y / (80 - t)) ** 2 + (x / (70 - t)) ** 2) <= 1.0
    crescent = brain & ~inner & (x > 20) & (np.abs(z) < 30) & (np.abs(y) < 50)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[skull] = 1000.0
    hu[brain] = 35.0
    hu[crescent] = 70.0
    hu = ndimage.gaussian_filter(hu, sigma=(0.6, 1.0, 1.0))  # a slice profile about a slice wide
    visible = crescent & (hu <= 150.0)
    hu += rng.normal(0.0, 4.0, shape).astype(np.float32)
    return hu, visible


def as_full(bbox: tuple[int, ...], mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    full = np.zeros(shape, dtype=bool)
    full[tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))] = mask
    return full
