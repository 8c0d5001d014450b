"""Grow a detected region into the image, so its mask and volume follow the lesion rather than the network.

A small network finds a lesion's densest part and misses the rest of a long, thin one (a subdural crescent, a
subarachnoid layer): on phantoms ct-hemorrhage 0.4.0 covered a quarter of most subdurals and reported a median
0.46x their volume. The image shows the rest. From the network's region, the mask grows into connected voxels
whose lightly smoothed value lies half way or more from the surrounding tissue to the region's own value (the
edge of a blurred lesion lies at half its contrast, so the volume stays unbiased), within the output's value range,
up to `margin_mm` beyond the region's box.

Partial volume next to a much denser structure (bone next to brain) reads like the lesion: a band of voxels
against the skull's inner table in every head, and a wide one where thick slices cut the skull obliquely. Voxels
within `barrier_mm` in-plane or one slice of the barrier are not grown through; after growing, the mask takes
those of them that touch it, so blood against the skull is still measured. A thin bridge (under `open_mm`) is cut
before growing, so the mask does not run along such a band either.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from models.manifest import Growth
from models.regions import bounds, cropped, in_plane_radius

GRID_MM = 1.5  # grown on voxels no finer than the model's in-plane grid: a 300-slice head costs seconds otherwise
SMOOTHING_MM = 1.0  # in-plane Gaussian sigma before thresholding: noise would otherwise fray the edge
# Grown voxels stand out from the tissue around by this many of its standard deviations: grey matter lies above
# the brain's median, as does a beam-hardened posterior fossa, and a faint bleed's half-way value falls among them
# (a 0.7 mL subarachnoid region grew through 105 mL of fossa before this).
TISSUE_SIGMAS = 3.0
LEAK_SIZE, LEAK_CONTRAST = 2.0, 0.4  # see _leaked
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
    factors, block_spacing = block_grid(spacing)
    blocks = _blocks(values[box], factors)
    seed = np.zeros(blocks.shape, dtype=bool)  # the blocks the region touches
    seed[tuple(((np.argwhere(mask) + np.subtract(bbox[:3], lo)) // factors).T)] = True
    coarse = _grown(blocks, seed, block_spacing, growth, value_range)

    # Back on the native grid, within the grown blocks' extent only (a 300-slice box is 18 M voxels).
    extent = bounds(coarse)
    start = [o + e.start * f for o, e, f in zip(lo, extent, factors, strict=True)]
    stop = [min(h, o + e.stop * f) for h, o, e, f in zip(hi, lo, extent, factors, strict=True)]
    grown = _upsampled(coarse[extent], factors, tuple(b - a for a, b in zip(start, stop, strict=True)))
    region = tuple(slice(a - s0, b - s0) for a, b, s0 in zip(bbox[:3], bbox[3:], start, strict=True))
    grown[region] |= mask
    return cropped(start, grown)


def _grown(
    values: np.ndarray,
    seed: np.ndarray,
    spacing: tuple[float, float, float],
    growth: Growth,
    value_range: tuple[float, float],
) -> np.ndarray:
    """The seed and the blood-dense voxels connected to it, off the barrier's partial volume."""
    smooth = ndimage.gaussian_filter(values, sigma=(0.0, SMOOTHING_MM / spacing[1], SMOOTHING_MM / spacing[2]))
    region = float(np.median(smooth[seed]))  # the lesion's value as the network saw it
    edge = _edge_value(smooth, region, growth.background, value_range[0])
    dense = (smooth >= edge) & (smooth <= value_range[1])
    core = dense & ~_near(smooth >= growth.barrier, growth.barrier_mm, spacing, BARRIER_SLICES)
    core = _opened(core, growth.open_mm, spacing)

    labels, _ = ndimage.label(core | seed)
    grown = np.isin(labels, np.unique(labels[seed])) & (core | seed)
    grown |= _near(grown, growth.barrier_mm, spacing, BARRIER_SLICES) & dense
    return seed if _leaked(smooth, seed, grown, edge, region) else grown


def _leaked(smooth: np.ndarray, seed: np.ndarray, grown: np.ndarray, edge: float, region: float) -> bool:
    """The growth ran into tissue rather than the lesion: what it added is over LEAK_SIZE times the region and
    its values lie barely above the edge (under LEAK_CONTRAST of the way to the region's). The parts of a lesion
    the network missed are the same blood (on 160 development and calibration heads every genuine growth over
    twice its region added values 0.59-1.31 of the way), while tissue that happens to read above the edge (grey
    matter, a beam-hardened fossa, a scanner's HU offset) sits just above it."""
    added = grown & ~seed
    if added.sum() <= LEAK_SIZE * seed.sum():
        return False
    return float(np.median(smooth[added])) < edge + LEAK_CONTRAST * (region - edge)


def block_grid(spacing: tuple[float, float, float]) -> tuple[tuple[int, ...], tuple[float, float, float]]:
    """The voxels per block along each axis (blocks no finer than GRID_MM) and the blocks' spacing."""
    factors = tuple(max(1, int(GRID_MM // s)) for s in spacing)
    return factors, (spacing[0] * factors[0], spacing[1] * factors[1], spacing[2] * factors[2])


def _blocks(values: np.ndarray, factors: tuple[int, ...]) -> np.ndarray:
    """The mean of each block of `factors` voxels (the last ones partial)."""
    if factors == (1, 1, 1):
        return np.asarray(values, dtype=np.float32)
    x = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))[None, None]
    return torch.nn.functional.avg_pool3d(x, kernel_size=factors, stride=factors, ceil_mode=True)[0, 0].numpy()


def _upsampled(mask: np.ndarray, factors: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """A coarse mask back on the fine grid of `shape`: its smooth (trilinear) outline, not the blocks."""
    if factors == (1, 1, 1):
        return mask
    return interpolated(mask.astype(np.float32), factors, shape) >= 0.5


def interpolated(values: np.ndarray, factors: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    """Block values (float32) on the fine grid of `shape`, trilinear: a smooth field, not the blocks."""
    if factors == (1, 1, 1):
        return values
    fine = torch.nn.functional.interpolate(
        torch.from_numpy(values)[None, None],
        size=tuple(n * f for n, f in zip(values.shape, factors, strict=True)),
        mode="trilinear",
        align_corners=False,
    )[0, 0].numpy()
    return fine[tuple(slice(0, n) for n in shape)]


def _edge_value(smooth: np.ndarray, region: float, background: tuple[float, float], floor: float) -> float:
    """Half way from the surrounding tissue (median of the voxels in the background range) to the region's value,
    and not below `floor` nor within TISSUE_SIGMAS of the tissue's own spread."""
    around = smooth[(smooth >= background[0]) & (smooth <= background[1])]
    tissue, spread = (background[0] + background[1]) / 2, 0.0
    if around.size:
        tissue = float(np.median(around))
        spread = 1.4826 * float(np.median(np.abs(around - tissue)))  # a robust standard deviation
    return max(tissue + 0.5 * (region - tissue), tissue + TISSUE_SIGMAS * spread, floor)


def _near(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float], slices: int) -> np.ndarray:
    """Voxels within `radius_mm` in-plane of `mask` in their own slice, or within `slices` above or below it:
    partial volume reaches across a slice's plane and along its thickness, not diagonally. Separable maximum
    filters (binary dilation by a footprint took seconds on a 512 x 512 head)."""
    ry, rx = in_plane_radius(radius_mm, spacing)
    as_bytes = mask.view(np.uint8)
    in_plane = ndimage.maximum_filter(as_bytes, size=(1, 2 * ry + 1, 2 * rx + 1))
    along_z = ndimage.maximum_filter(as_bytes, size=(2 * slices + 1, 1, 1))
    return (in_plane | along_z).view(bool)


def _opened(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Opening in-plane by a square `radius_mm` either side (at least one voxel): separable minimum then maximum
    filters, for the speed a 300-slice head needs."""
    ry, rx = in_plane_radius(radius_mm, spacing)
    size = (1, 2 * ry + 1, 2 * rx + 1)
    return ndimage.maximum_filter(ndimage.minimum_filter(mask.view(np.uint8), size=size), size=size).view(bool)
