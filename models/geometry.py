"""Measurements of a region mask in millimetres."""

from __future__ import annotations

import contextlib

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError


def longest_diameter_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """The longest in-plane distance across the region, over its slices: (slices, rows, columns) mask,
    (row, column) spacing. Measured between voxel centres, plus one voxel, like a calliper on the image.

    Slices are measured in the order of their bounding box's diagonal, which no distance inside can exceed,
    and no further once that bound falls below the longest found: a grown subdural spans a hundred slices."""
    rows, columns = mask.any(axis=2), mask.any(axis=1)
    occupied = np.flatnonzero(rows.any(axis=1))
    bounds = {int(z): _diagonal(rows[z], columns[z], spacing) for z in occupied}
    longest = 0.0
    for z in sorted(bounds, key=bounds.get, reverse=True):  # type: ignore[arg-type]
        if bounds[z] <= longest:
            break
        longest = max(longest, _plane_diameter(mask[z], spacing))
    return longest + float(min(spacing)) if len(occupied) else 0.0


def _diagonal(rows: np.ndarray, columns: np.ndarray, spacing: tuple[float, float]) -> float:
    r, c = np.flatnonzero(rows), np.flatnonzero(columns)
    return float(np.hypot((r[-1] - r[0]) * spacing[0], (c[-1] - c[0]) * spacing[1]))


def _plane_diameter(plane: np.ndarray, spacing: tuple[float, float]) -> float:
    edge = plane & ~ndimage.binary_erosion(plane)
    points = np.argwhere(edge) * np.asarray(spacing)
    if len(points) > 3:
        with contextlib.suppress(QhullError):  # collinear points: keep them all
            points = points[ConvexHull(points).vertices]
    gaps = points[:, None, :] - points[None, :, :]
    return float(np.sqrt((gaps**2).sum(-1)).max())
