"""Connected regions of a thresholded probability map, the tight box of a region's mask, a radius in voxels, and a
mask widened by such a radius."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage


def connected_regions(mask: np.ndarray) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Each connected region of `mask`: its bounding slices and its own voxels within them."""
    labels, _ = ndimage.label(mask)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is not None:
            yield region, labels[region] == index


def bounds(mask: np.ndarray) -> tuple[slice, ...]:
    """The slices that hold every voxel of a non-empty mask, and no more."""
    spans = []
    for axis in range(mask.ndim):
        where = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != axis)))
        spans.append(slice(int(where[0]), int(where[-1]) + 1))
    return tuple(spans)


def cropped(corner: tuple[int, ...] | list[int], mask: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """A non-empty mask whose first voxel lies at `corner` (volume indices), cut to its voxels: the bounding box
    (z0, y0, x0, z1, y1, x1) in volume indices and the mask within it."""
    box = bounds(mask)
    lower = tuple(c + b.start for c, b in zip(corner, box, strict=True))
    return lower + tuple(c + b.stop for c, b in zip(corner, box, strict=True)), mask[box]


def in_plane_radius(radius_mm: float, spacing: tuple[float, ...]) -> tuple[int, int]:
    """A radius in (row, column) voxels of a (z, y, x) grid: at least one, unless it is 0."""
    if radius_mm <= 0:
        return 0, 0
    ry, rx = (max(1, round(radius_mm / s)) for s in spacing[1:])
    return ry, rx


def dilated(mask: np.ndarray, radius_mm: float, spacing: tuple[float, ...], slices: int) -> np.ndarray:
    """A boolean mask widened by a box of `radius_mm` in-plane and `slices` along z (a separable maximum filter: a
    footprint's binary dilation took seconds on a 512 x 512 head)."""
    ry, rx = in_plane_radius(radius_mm, spacing)
    size = (2 * slices + 1, 2 * ry + 1, 2 * rx + 1)
    return ndimage.maximum_filter(mask.view(np.uint8), size=size).view(bool)
