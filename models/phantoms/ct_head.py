"""Procedural non-contrast CT head phantoms with intracranial bleeds and their look-alikes.

Anatomy is coarse but in the right units: air, scalp, skull (bone HU), brain
parenchyma with grey/white variation, CSF ventricles. Bleeds are hyperdense
(50-90 HU) intraparenchymal blobs or subdural crescents of varied size,
shape, contrast and position. Negatives for the detector include look-alikes:
calcifications (much denser, small) and vessels (tubes a little denser than
brain). The image is blurred and noised like a scanner. No real data anywhere.

Arrays are (slice, row, column) in Hounsfield units; `spacing_mm` matches.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

AIR, SCALP, CSF = -1000.0, 30.0, 5.0
BONE = (700.0, 1400.0)
BRAIN = (28.0, 40.0)  # white to grey matter
BLEED = (50.0, 90.0)  # acute blood
CALCIFICATION = (150.0, 400.0)
VESSEL = (44.0, 52.0)


@dataclass(frozen=True)
class Lesion:
    kind: str  # "intraparenchymal" or "subdural"
    centre: tuple[int, int, int]  # centroid voxel (slice, row, column); may fall outside an irregular shape
    volume_ml: float
    mean_hu: float


@dataclass(frozen=True)
class HeadPhantom:
    hu: np.ndarray  # float32 (slices, rows, columns)
    bleed_mask: np.ndarray  # bool, the ground truth for segmentation
    spacing_mm: tuple[float, float, float]
    lesions: list[Lesion] = field(default_factory=list)
    lookalikes: list[str] = field(default_factory=list)  # kinds planted that are not bleeds
    # Which planted lesion each voxel of bleed_mask belongs to (1, 2, ...; 0 none), where the generator records it:
    # a layer the visible-blood truth cuts into fragments is still one lesion
    lesion_labels: np.ndarray | None = None

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing_mm)) / 1000.0


def ct_head(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (32, 128, 128),
    spacing_mm: tuple[float, float, float] = (5.0, 1.5, 1.5),
    bleeds: int | None = None,
    lookalikes: bool = True,
) -> HeadPhantom:
    """One phantom. `bleeds`: how many to plant (None: 0 to 2 at random, half the cases none)."""
    grid = _grid_mm(shape, spacing_mm)
    head = _ellipsoid(grid, centre=(0.0, 0.0, 0.0), radii=_jitter(rng, (70.0, 95.0, 78.0), 0.08))
    skull = _ellipsoid(grid, centre=(0.0, 0.0, 0.0), radii=_shrink(head.radii, 5.5))  # scalp 5.5 mm
    brain = _ellipsoid(grid, centre=(0.0, 0.0, 0.0), radii=_shrink(head.radii, 12.0))  # bone 6.5 mm

    hu = np.full(shape, AIR, dtype=np.float32)
    hu[head.mask] = SCALP
    hu[skull.mask] = rng.uniform(*BONE)
    hu[brain.mask] = _parenchyma(rng, shape, brain.mask)
    hu[_ventricles(rng, grid)] = CSF

    mask = np.zeros(shape, dtype=bool)
    count = bleeds if bleeds is not None else int(rng.choice([0, 0, 1, 2]))
    lesions = [_plant_bleed(rng, grid, hu, mask, brain, spacing_mm) for _ in range(count)]
    planted = _plant_lookalikes(rng, grid, hu, brain) if lookalikes else []

    hu = ndimage.gaussian_filter(hu, sigma=(0.3, 0.8, 0.8))  # scanner blur: less across thick slices
    hu += rng.normal(0.0, rng.uniform(3.0, 7.0), shape).astype(np.float32)
    return HeadPhantom(hu.astype(np.float32), mask, spacing_mm, lesions, planted)


@dataclass(frozen=True)
class _Shape:
    mask: np.ndarray
    centre: tuple[float, float, float]
    radii: tuple[float, float, float]


def _grid_mm(shape: tuple[int, int, int], spacing: tuple[float, float, float]) -> list[np.ndarray]:
    """Millimetre coordinates of each voxel centre, origin at the volume centre (broadcastable)."""
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    return list(np.meshgrid(*axes, indexing="ij", sparse=True))


def _ellipsoid(grid: list[np.ndarray], centre: tuple[float, ...], radii: tuple[float, ...]) -> _Shape:
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return _Shape(np.broadcast_to(r2 <= 1.0, tuple(len(g.ravel()) for g in grid)).copy(), centre, radii)


def _shrink(radii: tuple[float, ...], by_mm: float) -> tuple[float, float, float]:
    return tuple(max(r - by_mm, 1.0) for r in radii)  # type: ignore[return-value]


def _jitter(rng: np.random.Generator, values: tuple[float, ...], fraction: float) -> tuple[float, float, float]:
    return tuple(v * rng.uniform(1 - fraction, 1 + fraction) for v in values)  # type: ignore[return-value]


def _parenchyma(rng: np.random.Generator, shape: tuple[int, int, int], inside: np.ndarray) -> np.ndarray:
    """Grey/white variation: smooth random field mapped onto the brain HU range."""
    field_ = ndimage.gaussian_filter(rng.normal(size=shape), sigma=(1.0, 6.0, 6.0))
    field_ = (field_ - field_.min()) / (np.ptp(field_) or 1.0)
    return (BRAIN[0] + field_ * (BRAIN[1] - BRAIN[0]))[inside]


def _ventricles(rng: np.random.Generator, grid: list[np.ndarray]) -> np.ndarray:
    """Two lateral ventricles either side of the midline."""
    mask = np.zeros(tuple(len(g.ravel()) for g in grid), dtype=bool)
    size = rng.uniform(0.7, 1.3)
    for side in (-1, 1):
        centre = (rng.uniform(5, 20), rng.uniform(-10, 5), side * rng.uniform(8, 13))
        mask |= _ellipsoid(grid, centre, (18 * size, 28 * size, 5 * size)).mask
    return mask


def _plant_bleed(
    rng: np.random.Generator,
    grid: list[np.ndarray],
    hu: np.ndarray,
    mask: np.ndarray,
    brain: _Shape,
    spacing: tuple[float, float, float],
) -> Lesion:
    density = float(rng.uniform(*BLEED))
    if rng.random() < 0.7:
        kind = "intraparenchymal"
        centre = _point_inside(rng, brain, margin=0.6)
        radii = tuple(rng.uniform(4.0, 18.0) * rng.uniform(0.6, 1.4, 3))
        blob = _ellipsoid(grid, centre, radii).mask
        # Irregular margin: keep the ellipsoid where a smooth noise field allows.
        rough = ndimage.gaussian_filter(rng.normal(size=hu.shape), sigma=(0.7, 2.5, 2.5))
        lesion = blob & (rough > -0.5 * rough.std()) & brain.mask
    else:
        kind = "subdural"
        side = rng.choice([-1, 1])
        outer = _ellipsoid(grid, brain.centre, brain.radii).mask
        shrunk = _ellipsoid(grid, brain.centre, _shrink(brain.radii, rng.uniform(3.0, 9.0))).mask
        band = outer & ~shrunk
        z0 = rng.uniform(-brain.radii[0] * 0.6, brain.radii[0] * 0.4)
        extent = rng.uniform(15.0, 45.0)
        lesion = band & (grid[2] * side > 5.0) & (np.abs(grid[0] - z0) < extent)
    if not lesion.any():  # tiny draws can vanish on a coarse grid: fall back to a small solid blob
        centre = _point_inside(rng, brain, margin=0.5)
        lesion = _ellipsoid(grid, centre, (6.0, 6.0, 6.0)).mask & brain.mask
        kind = "intraparenchymal"
    hu[lesion] = density
    mask |= lesion
    idx = np.argwhere(lesion)
    centre_vox = tuple(int(v) for v in idx.mean(axis=0).round())
    return Lesion(kind, centre_vox, float(lesion.sum() * np.prod(spacing) / 1000.0), density)


def _plant_lookalikes(rng: np.random.Generator, grid: list[np.ndarray], hu: np.ndarray, brain: _Shape) -> list[str]:
    planted = []
    for _ in range(int(rng.integers(0, 3))):  # calcifications: pineal, choroid plexus
        centre = _point_inside(rng, brain, margin=0.5)
        hu[_ellipsoid(grid, centre, tuple(rng.uniform(1.5, 3.0, 3))).mask] = rng.uniform(*CALCIFICATION)
        planted.append("calcification")
    for _ in range(int(rng.integers(0, 3))):  # vessels: tubes along the slice direction, slightly dense
        y, x = _point_inside(rng, brain, margin=0.7)[1:]
        radius = rng.uniform(1.5, 2.5)
        tube = ((grid[1] - y) ** 2 + (grid[2] - x) ** 2 <= radius**2) & brain.mask
        hu[tube] = rng.uniform(*VESSEL)
        planted.append("vessel")
    return planted


def _point_inside(rng: np.random.Generator, shape: _Shape, margin: float) -> tuple[float, float, float]:
    """A random point within `margin` of the ellipsoid's radii from its centre."""
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction) or 1.0
    distance = margin * rng.random() ** (1 / 3)
    return tuple(c + d * distance * r for c, d, r in zip(shape.centre, direction, shape.radii, strict=True))  # type: ignore[return-value]
