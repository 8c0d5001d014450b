"""Connected regions of a probability map, and the Finding each one becomes. Shared by the detectors."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage

from models.findings import Finding


def connected_regions(mask: np.ndarray) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Each connected region of `mask`: its bounding slices and its own voxels within them."""
    labels, _ = ndimage.label(mask)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is not None:
            yield region, labels[region] == index


def region_finding(
    label: str, prob: np.ndarray, region: tuple[slice, ...], inside: np.ndarray, voxel_ml: float
) -> Finding:
    """Score: the region's highest probability; bbox: its bounding slices; volume: its voxels."""
    bbox = tuple(int(s.start) for s in region) + tuple(int(s.stop) for s in region)
    score = round(float(prob[region][inside].max()), 4)
    return Finding(label, score, bbox, round(float(inside.sum()) * voxel_ml, 3))
