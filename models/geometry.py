"""Measurements of a region mask in millimetres."""

from __future__ import annotations

import contextlib

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError


def longest_diameter_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """The longest in-plane distance across the region, over its slices: (slices, rows, columns) mask,
    (row, column) spacing. Measured between voxel centres, plus one voxel, like a calliper on the image."""
    longest = 0.0
    for plane in mask:
        if not plane.any():
            continue
        edge = plane & ~ndimage.binary_erosion(plane)
        points = np.argwhere(edge) * np.asarray(spacing)
        if len(points) > 3:
            with contextlib.suppress(QhullError):  # collinear points: keep them all
                points = points[ConvexHull(points).vertices]
        gaps = points[:, None, :] - points[None, :, :]
        longest = max(longest, float(np.sqrt((gaps**2).sum(-1)).max()) + float(min(spacing)))
    return longest
