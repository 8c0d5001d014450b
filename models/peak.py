"""How dense a detected region reads at its densest, off the skull: what tells a faint calcification from blood.

Acute blood reads 50-90 HU. A faintly calcified falx (a plate 2 mm thick at 150-175 HU) reads 95-130 HU at its
midline after the scanner's blur and 65-90 HU either side, blood's range, and the network takes it for blood:
on 120 development heads (seed 777) it was each of ct-hemorrhage 0.5.1's nine false positives, seven of seven
heads whose falx was calcified under 175 HU. A bleed's region reads no denser than blood plus noise, except where
it touches the skull, whose partial volume reads anything up to bone: voxels within BARRIER_MM in-plane of the barrier
value, on their slice or the next, are not counted. The densest PEAK_MM3 count rather than the single densest voxel, so
one noisy voxel of a large, noisy thin-slice bleed does not decide. The region is the network's own (not a ring
around it), and a calcification that reads over the barrier is left out with its partial volume as bone is: a
bleed beside a densely calcified choroid plexus keeps its own, blood-dense, peak. One beside a small or faint
calcification (110-300 HU once smoothed) takes that calcification's edge into its region and is weighed down.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.special import expit

from models.manifest import Peak
from models.regions import dilated, in_plane_radius

SMOOTHING_MM = 1.0  # in-plane Gaussian sigma: the peak of a structure, not of the noise
BARRIER_MM = 5.0  # the skull's partial volume reaches this far in-plane, on its slice and the next
PEAK_MM3 = 10.0  # the peak is the value the densest this-many mm3 of the region reach
CHUNK_SLICES = 16


def peak_value(
    values: np.ndarray, spacing: tuple[float, float, float], bbox: tuple[int, ...], mask: np.ndarray, peak: Peak
) -> float | None:
    """The value the densest PEAK_MM3 of the region (bbox, mask of the bbox's shape) reach, lightly smoothed;
    None when all of it lies by the barrier. Read CHUNK_SLICES at a time, so a region as large as the head costs
    no more memory than a slab of it."""
    reach = in_plane_radius(BARRIER_MM, spacing)
    rows = slice(max(0, bbox[1] - reach[0]), min(values.shape[1], bbox[4] + reach[0]))
    columns = slice(max(0, bbox[2] - reach[1]), min(values.shape[2], bbox[5] + reach[1]))
    in_crop = (
        slice(bbox[1] - rows.start, bbox[4] - rows.start),
        slice(bbox[2] - columns.start, bbox[5] - columns.start),
    )
    rank = int(PEAK_MM3 / float(np.prod(spacing)))  # this many voxels read denser than the peak
    densest = []
    for z0 in range(bbox[0], bbox[3], CHUNK_SLICES):
        z1 = min(bbox[3], z0 + CHUNK_SLICES)
        read = slice(max(0, z0 - 1), min(values.shape[0], z1 + 1))  # a slice either side, for the barrier's reach
        crop = values[read, rows, columns].astype(np.float32)
        smooth = ndimage.gaussian_filter(crop, sigma=(0.0, SMOOTHING_MM / spacing[1], SMOOTHING_MM / spacing[2]))
        region = np.zeros(crop.shape, dtype=bool)
        region[(slice(z0 - read.start, z1 - read.start), *in_crop)] = mask[z0 - bbox[0] : z1 - bbox[0]]
        if peak.barrier is not None:
            region &= ~dilated(smooth >= peak.barrier, BARRIER_MM, spacing, 1)
        densest.append(_largest(smooth[region], rank + 1))
    inside = np.concatenate(densest)
    if inside.size == 0:
        return None
    return float(_largest(inside, min(rank, inside.size - 1) + 1).min())


def _largest(values: np.ndarray, count: int) -> np.ndarray:
    """The `count` largest of `values` (all of them when there are fewer), in no order."""
    if values.size <= count:
        return values
    return np.partition(values, values.size - count)[values.size - count :]


def peak_weight(peak: Peak, value: float | None) -> float:
    """A logistic factor of the peak around max_value: 1 well under it, 0 well over it (a hard cut for softness 0);
    1 when nothing was measured."""
    if value is None:
        return 1.0
    if peak.softness == 0:
        return 1.0 if value <= peak.max_value else 0.0
    return float(expit((peak.max_value - value) / peak.softness))
