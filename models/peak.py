"""How dense a detected region reads at its densest, off the skull: what tells a faint calcification from blood.

Acute blood reads 50-90 HU. A faintly calcified falx (a plate 2 mm thick at 150-175 HU) reads 95-130 HU at its
midline after the scanner's blur and 65-90 HU either side, blood's range, and the network takes it for blood:
on 120 development heads (seed 777) it was each of ct-hemorrhage 0.5.1's nine false positives, seven of seven
heads whose falx was calcified under 175 HU. A bleed's region reads no denser than blood plus noise, except where
it touches the skull, whose partial volume reads anything up to bone: voxels within BARRIER_MM in-plane or one
slice of the barrier value are not counted. The densest PEAK_MM3 count rather than the single densest voxel, so
one noisy voxel of a large, noisy thin-slice bleed does not decide. The region is the network's own (not a ring
around it): a bleed beside a calcified choroid plexus keeps its own, blood-dense, peak.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from models.manifest import Peak

SMOOTHING_MM = 1.0  # in-plane Gaussian sigma: the peak of a structure, not of the noise
BARRIER_MM = 5.0  # the skull's partial volume reaches this far in-plane (and one slice along z)
PEAK_MM3 = 10.0  # the peak is the value the densest this-many mm3 of the region reach


def peak_value(
    values: np.ndarray, spacing: tuple[float, float, float], bbox: tuple[int, ...], mask: np.ndarray, peak: Peak
) -> float | None:
    """The value the densest PEAK_MM3 of the region (bbox, mask of the bbox's shape) reach, lightly smoothed;
    None when all of it lies by the barrier."""
    reach = [1, *(max(1, round(BARRIER_MM / s)) for s in spacing[1:])]
    lo = [max(0, b - r) for b, r in zip(bbox[:3], reach, strict=True)]
    hi = [min(n, b + r) for b, r, n in zip(bbox[3:], reach, values.shape, strict=True)]
    crop = values[tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))].astype(np.float32)
    smooth = ndimage.gaussian_filter(crop, sigma=(0.0, SMOOTHING_MM / spacing[1], SMOOTHING_MM / spacing[2]))
    region = np.zeros(crop.shape, dtype=bool)
    region[tuple(slice(b - a, b - a + n) for b, a, n in zip(bbox[:3], lo, mask.shape, strict=True))] = mask
    if peak.barrier is not None:
        bone = (smooth >= peak.barrier).view(np.uint8)
        near = ndimage.maximum_filter(bone, size=(3, 2 * reach[1] + 1, 2 * reach[2] + 1)).view(bool)
        region &= ~near
    if not region.any():
        return None
    inside = smooth[region]
    rank = min(inside.size - 1, int(PEAK_MM3 / float(np.prod(spacing))))  # this many voxels read denser
    return float(np.partition(inside, inside.size - 1 - rank)[inside.size - 1 - rank])


def peak_weight(peak: Peak, value: float | None) -> float:
    """A logistic factor of the peak around max_value: 1 well under it, 0 well over it (a hard cut for softness 0);
    1 when nothing was measured."""
    if value is None:
        return 1.0
    if peak.softness == 0:
        return 1.0 if value <= peak.max_value else 0.0
    return 1.0 / (1.0 + math.exp(min((value - peak.max_value) / peak.softness, 700.0)))
