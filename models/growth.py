"""Grow a detected region into the image, so its mask and volume follow the lesion rather than the network.

A small network finds a lesion's densest part and misses the rest of a long, thin one (a subdural crescent, a
subarachnoid layer): on phantoms ct-hemorrhage 0.4.0 covered a quarter of most subdurals and reported a median
0.46x their volume. The image shows the rest. From the network's region, the mask grows into connected voxels
whose lightly smoothed value lies half way or more from the surrounding tissue to the region's own value (the
edge of a blurred lesion lies at half its contrast, so the volume stays unbiased), within the output's value range,
up to `margin_mm` beyond the region's box.

Partial volume next to a much denser structure (bone next to brain) reads like the lesion: a band of voxels
against the skull's inner table in every head, and a wide one where thick slices cut the skull obliquely. Voxels
within `barrier_mm` in-plane or two slices of the barrier are not grown through; after growing, the mask takes
those of them that touch it, so blood against the skull is still measured. A thin bridge (under `open_mm`) is cut
before growing, so the mask does not run along such a band either.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.manifest import Growth

SMOOTHING_MM = 1.0  # in-plane Gaussian sigma before thresholding: noise would otherwise fray the edge
BARRIER_SLICES = 1  # partial volume reaches about one slice along z (a slice profile about as wide as the slice)


def grow(
    values: np.ndarray,
    spacing: tuple[float, float, float],
    bbox: tuple[int, ...],
    mask: np.ndarray,
    growth: Growth,
    value_range: tuple[float, float],
) -> tuple[tuple[int, ...], np.ndarray]:
    """The region (bbox, mask of the bbox's shape) grown into `values` (a (z, y, x) volume); the same region when
    nothing is left to grow into."""
    lo = [max(0, b - int(growth.margin_mm / s)) for b, s in zip(bbox[:3], spacing, strict=True)]
    hi = [min(n, b + int(growth.margin_mm / s)) for b, s, n in zip(bbox[3:], spacing, values.shape, strict=True)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    smooth = ndimage.gaussian_filter(
        values[box].astype(np.float32), sigma=(0.0, SMOOTHING_MM / spacing[1], SMOOTHING_MM / spacing[2])
    )
    seed = np.zeros(smooth.shape, dtype=bool)
    seed[tuple(slice(a - o, b - o) for a, b, o in zip(bbox[:3], bbox[3:], lo, strict=True))] = mask

    edge = _edge_value(smooth, seed, growth.background, value_range[0])
    dense = (smooth >= edge) & (smooth <= value_range[1])
    core = dense & ~_near(smooth >= growth.barrier, growth.barrier_mm, spacing, BARRIER_SLICES)
    core = ndimage.binary_opening(core, structure=_disk(growth.open_mm, spacing))

    labels, _ = ndimage.label(core | seed)
    grown = np.isin(labels, np.unique(labels[seed])) & (core | seed)
    grown |= _near(grown, growth.barrier_mm, spacing, BARRIER_SLICES) & dense
    tight = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(grown))
    out = tuple(o + t.start for o, t in zip(lo, tight, strict=True))
    return out + tuple(o + t.stop for o, t in zip(lo, tight, strict=True)), grown[tight]


def _edge_value(smooth: np.ndarray, seed: np.ndarray, background: tuple[float, float], floor: float) -> float:
    """Half way from the surrounding tissue (median of the voxels in the background range) to the region (its
    median), and not below `floor`."""
    around = smooth[(smooth >= background[0]) & (smooth <= background[1])]
    tissue = float(np.median(around)) if around.size else (background[0] + background[1]) / 2
    return max(tissue + 0.5 * (float(np.median(smooth[seed])) - tissue), floor)


def _near(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float], slices: int) -> np.ndarray:
    """Voxels within `radius_mm` in-plane of `mask` in their own slice, or within `slices` above or below it:
    partial volume reaches across a slice's plane and along its thickness, not diagonally. Separable maximum
    filters (binary dilation by a footprint took seconds on a 512 x 512 head)."""
    ry, rx = (max(1, round(radius_mm / s)) for s in spacing[1:])
    as_bytes = mask.view(np.uint8)
    in_plane = ndimage.maximum_filter(as_bytes, size=(1, 2 * ry + 1, 2 * rx + 1))
    along_z = ndimage.maximum_filter(as_bytes, size=(2 * slices + 1, 1, 1))
    return (in_plane | along_z).view(bool)


def _disk(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """An in-plane ellipse `radius_mm` across (at least one voxel), one slice thick."""
    ry, rx = (max(1, round(radius_mm / s)) for s in spacing[1:])
    y, x = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    return ((y / ry) ** 2 + (x / rx) ** 2 <= 1.0)[None]
