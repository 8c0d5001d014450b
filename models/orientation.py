"""Axial, sagittal or coronal in, the model's canonical orientation out, and findings back onto the series' grid.

The canonical orientation is an axial stack as a head CT arrives: slices from
feet to head (+S), rows from anterior to posterior (+P), columns from the
patient's right to left (+L), the order of DICOM's LPS axes reversed. A
sagittal or coronal series is transposed and flipped into it using the affine
(no interpolation: the axes are swapped, not resampled), so one network reads
every reconstruction plane; its findings are mapped back exactly, voxel for
voxel, so the SR and SEG reference the series' own images.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from models.findings import Finding
from models.image import ImageVolume

PLANE_TOLERANCE = 0.8  # |cosine| an array axis needs with a patient axis; below it the series is oblique


@dataclass(frozen=True)
class Reoriented:
    volume: ImageVolume  # in the canonical orientation
    order: tuple[int, int, int]  # canonical axis k is the series' axis order[k]
    flipped: tuple[bool, bool, bool]  # per canonical axis: reversed relative to the series

    @property
    def identity(self) -> bool:
        return self.order == (0, 1, 2) and not any(self.flipped)

    def finding_back(self, finding: Finding) -> Finding:
        """A finding on the canonical grid as the same voxels of the series' grid."""
        if self.identity:
            return finding
        shape = self.volume.array.shape
        lo, hi, centre = list(finding.bbox[:3]), list(finding.bbox[3:]), list(finding.centre)
        mask = finding.mask
        for k, flip in enumerate(self.flipped):
            if flip:
                lo[k], hi[k] = shape[k] - hi[k], shape[k] - lo[k]
                centre[k] = shape[k] - 1 - centre[k]
                if mask is not None:
                    mask = np.flip(mask, axis=k)
        inverse = np.argsort(self.order)
        bbox = tuple(lo[i] for i in inverse) + tuple(hi[i] for i in inverse)
        if mask is not None:
            mask = np.ascontiguousarray(np.transpose(mask, inverse))
        return replace(finding, bbox=bbox, centre=tuple(round(centre[i], 2) for i in inverse), mask=mask)


class Oblique(ValueError):
    """No reconstruction plane: an array axis is not within ~37 degrees of a patient axis."""


def canonical(volume: ImageVolume, contiguous: bool = True) -> Reoriented:
    """The volume in the canonical orientation (itself when it is an axial stack already). Projection images
    (one slice) are left as they are. Raises Oblique for an oblique reconstruction. `contiguous=False` gives a
    strided view instead of a copy, for a reader that only looks (a 300-slice CT's copy costs 0.7 s on a VM that
    faults its pages in slowly)."""
    if volume.array.shape[0] == 1:
        return Reoriented(volume, (0, 1, 2), (False, False, False))
    order, flipped = canonical_axes(volume.affine)
    if order == (0, 1, 2) and not any(flipped):
        return Reoriented(volume, order, flipped)
    array = np.transpose(volume.array, order)
    for k, flip in enumerate(flipped):
        if flip:
            array = np.flip(array, axis=k)
    affine = reoriented_affine(volume.affine, volume.array.shape, order, flipped)
    spacing = tuple(volume.spacing_mm[axis] for axis in order)
    if contiguous:
        array = np.ascontiguousarray(array)
    reoriented = ImageVolume(
        array,
        spacing,  # type: ignore[arg-type]
        affine,
        volume.series_uid,
        volume.modality,
        tuple(f"canonical-{k}" for k in range(array.shape[0])),
        volume.spacing_known,
    )
    return Reoriented(reoriented, order, flipped)


Axes = tuple[int, int, int]
Flips = tuple[bool, bool, bool]


def canonical_axes(affine: np.ndarray) -> tuple[Axes, Flips]:
    """Which array axis is the canonical S, P and L axis, and whether each runs against it. Raises Oblique."""
    directions = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    patient_axis = np.abs(directions).argmax(axis=0)  # per array axis: 0 L, 1 P, 2 S
    if sorted(patient_axis) != [0, 1, 2] or np.abs(directions).max(axis=0).min() < PLANE_TOLERANCE:
        cosines = np.round(np.abs(directions).max(axis=0), 2).tolist()
        raise Oblique(f"oblique slices (axis cosines {cosines}); the model reads axial, sagittal or coronal stacks")
    order = tuple(int(np.nonzero(patient_axis == p)[0][0]) for p in (2, 1, 0))  # S, P, L
    flipped = tuple(bool(directions[p, axis] < 0) for p, axis in zip((2, 1, 0), order, strict=True))
    return order, flipped  # type: ignore[return-value]


def reoriented_affine(affine: np.ndarray, shape: tuple[int, ...], order: Axes, flipped: Flips) -> np.ndarray:
    """The affine of an array of `shape` (with `affine`) transposed to `order` and flipped where `flipped` says."""
    out = np.eye(4)
    for k, (axis, flip) in enumerate(zip(order, flipped, strict=True)):
        column = affine[:3, axis]
        out[:3, k] = -column if flip else column
    corner = np.array([shape[axis] - 1 if flip else 0 for axis, flip in zip(order, flipped, strict=True)], float)
    start = np.zeros(3)
    start[list(order)] = corner
    out[:3, 3] = affine[:3, :3] @ start + affine[:3, 3]
    return out
