"""Procedural non-contrast CT heads over varied acquisitions: what ct-hemorrhage trains and is evaluated on.

models/phantoms/ct_head.py stays the fixed-geometry phantom of the demo and the plumbing tests.

Anatomy is coarse but in the right units: air, scalp, skull (bone HU) of
varied thickness, brain parenchyma with grey/white variation, CSF ventricles,
a neck below the skull. Each volume draws its acquisition (domain
randomisation): head size, position, rotation and gantry tilt, scanner blur,
noise (for the voxel size: thin slices are noisier) and a calibration offset.
The grid is whatever `shape` and `spacing_mm` say (field of view 180-320 mm,
any matrix and slice count); anatomy is placed in millimetres.

Bleeds (50-90 HU) of five kinds: intraparenchymal blobs, subdural crescents,
epidural lenses, subarachnoid layers over the surface and intraventricular
blood. Look-alikes that are not bleeds: calcifications (much denser, small;
the falx), vessels and a dense venous sinus (a little denser than brain), and
beam hardening in the posterior fossa. No real data anywhere. The truth mask
is the blood that stays visible after blur (not mixed into the skull:
VISIBLE_MAX_HU); a lesion's volume is that of its visible part.

Arrays are (slice, row, column) in Hounsfield units; `spacing_mm` matches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from models.phantoms.ct_head import (  # the units, the phantom and its geometry helpers are the fixed phantom's
    AIR,
    BLEED,
    BONE,
    BRAIN,
    CALCIFICATION,
    CSF,
    SCALP,
    VESSEL,
    HeadPhantom,
    Lesion,
    _jitter,
    _point_inside,
    _Shape,
    _shrink,
)

KINDS = ("intraparenchymal", "subdural", "epidural", "subarachnoid", "intraventricular")
_KIND_WEIGHTS = (0.4, 0.2, 0.15, 0.15, 0.1)
MODEL_VOXEL_MM3 = 5.0 * 1.5 * 1.5  # noise is drawn for this voxel and scaled to the grid's
# The truth is the blood one can see: a voxel the blur mixed with the skull (subdural and epidural blood lies
# against the inner table; thick slices mix it most) reads as bone, and no reader would segment it as blood.
VISIBLE_MAX_HU = 150.0


def ct_head(
    rng: np.random.Generator,
    shape: tuple[int, int, int] = (32, 128, 128),
    spacing_mm: tuple[float, float, float] = (5.0, 1.5, 1.5),
    bleeds: int | None = None,
    lookalikes: bool = True,
    kinds: tuple[str, ...] | None = None,
) -> HeadPhantom:
    """One volume. `bleeds`: how many to plant (None: 0 to 2 at random, half the cases none); `kinds`: which
    kinds to draw from (default all)."""
    grid = _head_grid(rng, shape, spacing_mm)
    head = _ellipsoid(grid, shape, (0.0, 0.0, 0.0), _jitter(rng, (70.0, 95.0, 78.0), 0.1))
    skull = _ellipsoid(grid, shape, (0.0, 0.0, 0.0), _shrink(head.radii, rng.uniform(3.5, 7.0)))  # scalp
    brain = _ellipsoid(grid, shape, (0.0, 0.0, 0.0), _shrink(skull.radii, rng.uniform(4.0, 10.0)))  # bone

    hu = np.full(shape, AIR, dtype=np.float32)
    hu[_neck(grid, shape, head) & ~head.mask] = SCALP
    hu[head.mask] = SCALP
    hu[skull.mask] = rng.uniform(*BONE)
    hu[brain.mask] = _parenchyma(rng, shape, spacing_mm, brain.mask)
    ventricles = _ventricles(rng, grid, shape) & brain.mask
    hu[ventricles] = CSF

    mask = np.zeros(shape, dtype=bool)
    count = bleeds if bleeds is not None else int(rng.choice([0, 0, 1, 2]))
    anatomy = _Anatomy(grid, shape, spacing_mm, brain, skull, ventricles)
    drawn = [_plant_bleed(rng, anatomy, hu, mask, kinds or KINDS) for _ in range(count)]
    drawn = [d for d in drawn if d is not None]
    planted = _plant_lookalikes(rng, anatomy, hu, mask) if lookalikes else []

    blur_mm = (rng.uniform(0.4, 1.0) * max(spacing_mm[0], 1.0), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4))
    hu = ndimage.gaussian_filter(hu, sigma=[b / s for b, s in zip(blur_mm, spacing_mm, strict=True)])
    noise_sd = rng.uniform(1.5, 6.0) * np.sqrt(MODEL_VOXEL_MM3 / float(np.prod(spacing_mm)))
    noise = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma=(0.0, 0.6, 0.6))
    hu += noise * np.float32(min(noise_sd, 40.0) / max(float(noise.std()), 1e-6)) + np.float32(rng.uniform(-5, 5))
    visible = hu <= VISIBLE_MAX_HU
    kept = [
        (replace(lesion, volume_ml=float((m & visible).sum() * np.prod(spacing_mm) / 1000.0)), m) for lesion, m in drawn
    ]
    kept = [(lesion, m) for lesion, m in kept if lesion.volume_ml > 0]
    labels = np.zeros(shape, dtype=np.int16)
    for number, (_, m) in enumerate(kept, start=1):
        labels[m & visible] = number
    lesions = [lesion for lesion, _ in kept]
    return HeadPhantom(hu.astype(np.float32), mask & visible, spacing_mm, lesions, planted, labels)


@dataclass(frozen=True)
class _Anatomy:
    grid: list[np.ndarray]
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    brain: _Shape
    skull: _Shape
    ventricles: np.ndarray


def _head_grid(rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, ...]) -> list[np.ndarray]:
    """Head-frame millimetres of every voxel centre: the head off the volume centre by up to 15 mm (more
    along z), turned up to 15 degrees in the axial plane and tilted up to 12 (gantry tilt, chin down)."""
    axes = [((np.arange(n) - (n - 1) / 2) * s).astype(np.float32) for n, s in zip(shape, spacing, strict=True)]
    z, y, x = np.meshgrid(*axes, indexing="ij", sparse=True)
    shift = rng.uniform(-15, 15, 3) * (2.0, 1.0, 1.0)
    yaw, tilt = np.deg2rad(rng.uniform(-15, 15)), np.deg2rad(rng.uniform(-12, 12))
    z, y, x = z - shift[0], y - shift[1], x - shift[2]
    y, x = np.cos(yaw) * y - np.sin(yaw) * x, np.sin(yaw) * y + np.cos(yaw) * x
    z, y = np.cos(tilt) * z - np.sin(tilt) * y, np.sin(tilt) * z + np.cos(tilt) * y
    return [np.asarray(g, dtype=np.float32) for g in (z, y, x)]


def _ellipsoid(
    grid: list[np.ndarray], shape: tuple[int, ...], centre: tuple[float, ...], radii: tuple[float, ...]
) -> _Shape:
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii, strict=True))
    return _Shape(np.broadcast_to(r2 <= 1.0, shape).copy(), tuple(centre), tuple(radii))  # type: ignore[arg-type]


def _neck(grid: list[np.ndarray], shape: tuple[int, ...], head: _Shape) -> np.ndarray:
    """Soft tissue below the skull (z is head to feet negative), where a long scan reaches it."""
    z, y, x = grid
    low = z < -head.radii[0] * 0.5
    return np.broadcast_to(low & (((y - 10) / 55) ** 2 + (x / 60) ** 2 <= 1.0), shape)


def _parenchyma(
    rng: np.random.Generator, shape: tuple[int, int, int], spacing: tuple[float, ...], inside: np.ndarray
) -> np.ndarray:
    """Grey/white variation: a smooth random field (about 5 x 9 x 9 mm) mapped onto the brain HU range. Drawn
    on a 5 x 3 x 3 mm grid and interpolated, so its cost and look do not depend on the matrix."""
    import torch

    coarse = [max(2, round(n * s / c)) for n, s, c in zip(shape, spacing, (5.0, 3.0, 3.0), strict=True)]
    small = ndimage.gaussian_filter(rng.normal(size=coarse).astype(np.float32), sigma=(1.0, 3.0, 3.0))
    field_ = torch.nn.functional.interpolate(torch.from_numpy(small)[None, None], size=shape, mode="trilinear")
    field_ = field_[0, 0].numpy()
    field_ = (field_ - field_.min()) / (np.ptp(field_) or 1.0)
    offset = rng.uniform(-3.0, 3.0)
    return (BRAIN[0] + offset + field_ * (BRAIN[1] - BRAIN[0]))[inside].astype(np.float32)


def _ventricles(rng: np.random.Generator, grid: list[np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Two lateral ventricles either side of the midline."""
    mask = np.zeros(shape, dtype=bool)
    size = rng.uniform(0.7, 1.3)
    for side in (-1, 1):
        centre = (rng.uniform(5, 20), rng.uniform(-10, 5), side * rng.uniform(8, 13))
        mask |= _ellipsoid(grid, shape, centre, (18 * size, 28 * size, 5 * size)).mask
    return mask


def _plant_bleed(
    rng: np.random.Generator, a: _Anatomy, hu: np.ndarray, mask: np.ndarray, kinds: tuple[str, ...]
) -> tuple[Lesion, np.ndarray] | None:
    weights = np.array([w for k, w in zip(KINDS, _KIND_WEIGHTS, strict=True) if k in kinds])
    kind = str(rng.choice([k for k in KINDS if k in kinds], p=weights / weights.sum()))
    density = float(rng.uniform(*BLEED))
    lesion = _BLEEDS[kind](rng, a)
    if not lesion.any():  # a draw that misses the grid (a short scan): a small solid blob instead
        kind, lesion = (
            "intraparenchymal",
            _ellipsoid(a.grid, a.shape, _point_inside(rng, a.brain, 0.5), (6.0,) * 3).mask,
        )
        lesion &= a.brain.mask
    if not lesion.any():
        return None
    hu[lesion] = density
    mask |= lesion
    centre_vox = tuple(int(v) for v in np.argwhere(lesion).mean(axis=0).round())
    volume_ml = float(lesion.sum() * np.prod(a.spacing) / 1000.0)
    return Lesion(kind, centre_vox, volume_ml, density), lesion  # type: ignore[arg-type]


def _intraparenchymal(rng: np.random.Generator, a: _Anatomy) -> np.ndarray:
    centre = _point_inside(rng, a.brain, margin=0.6)
    radii = tuple(rng.uniform(5.0, 18.0) * rng.uniform(0.7, 1.4, 3))
    blob = _ellipsoid(a.grid, a.shape, centre, radii).mask
    # Irregular margin: keep the ellipsoid where a smooth noise field (about 4 mm) allows.
    sigma = [max(4.0 / s, 0.5) for s in a.spacing]
    rough = ndimage.gaussian_filter(rng.normal(size=a.shape).astype(np.float32), sigma=sigma)
    return blob & (rough > -0.5 * rough.std()) & a.brain.mask


def _surface_band(a: _Anatomy, depth_mm: float) -> np.ndarray:
    """The outermost `depth_mm` of the brain, under the skull."""
    inner = _ellipsoid(a.grid, a.shape, a.brain.centre, _shrink(a.brain.radii, depth_mm)).mask
    return a.brain.mask & ~inner


def _subdural(rng: np.random.Generator, a: _Anatomy) -> np.ndarray:
    side = rng.choice([-1, 1])
    z0 = rng.uniform(-a.brain.radii[0] * 0.6, a.brain.radii[0] * 0.4)
    extent, y0, length = rng.uniform(15.0, 40.0), rng.uniform(-40.0, 40.0), rng.uniform(25.0, 70.0)
    band = _surface_band(a, rng.uniform(3.0, 12.0)) & (a.grid[2] * side > 5.0)
    return band & (np.abs(a.grid[0] - z0) < extent) & (np.abs(a.grid[1] - y0) < length)


def _epidural(rng: np.random.Generator, a: _Anatomy) -> np.ndarray:
    """A lens against the inner table: an ellipsoid centred on the brain's surface, inside the skull only."""
    direction = np.array([rng.uniform(-0.3, 0.5), rng.uniform(-1, 1), rng.choice([-1, 1]) * rng.uniform(0.5, 1)])
    direction /= np.linalg.norm(direction)
    centre = tuple(c + d * r for c, d, r in zip(a.brain.centre, direction, a.brain.radii, strict=True))
    lens = _ellipsoid(a.grid, a.shape, centre, tuple(rng.uniform(12.0, 28.0, 3) * (1.0, 1.0, 1.0)))
    thick = rng.uniform(5.0, 18.0)
    return lens.mask & a.brain.mask & _surface_band(a, thick)


def _subarachnoid(rng: np.random.Generator, a: _Anatomy) -> np.ndarray:
    """A thin layer over part of the surface (sulci), and often blood in the basal cisterns."""
    patch = _ellipsoid(a.grid, a.shape, _point_inside(rng, a.brain, margin=1.0), (40.0, 45.0, 45.0)).mask
    # In the sulci, a few millimetres under the surface: a layer touching the skull would be blurred into bone.
    depth = rng.uniform(3.0, 5.0)
    layer = _surface_band(a, depth + rng.uniform(1.5, 3.5)) & ~_surface_band(a, depth) & patch
    if rng.random() < 0.6:
        cistern = (-a.brain.radii[0] * 0.35, rng.uniform(-5, 10), 0.0)
        layer |= _ellipsoid(a.grid, a.shape, cistern, (4.0, 10.0, 12.0)).mask & a.brain.mask
    return layer


def _intraventricular(rng: np.random.Generator, a: _Anatomy) -> np.ndarray:
    """Blood layering in the dependent (posterior) part of a lateral ventricle."""
    side = rng.choice([-1, 1])
    level = rng.uniform(0.0, 20.0)
    return a.ventricles & (a.grid[2] * side > 0) & (a.grid[1] > level)


_BLEEDS = {
    "intraparenchymal": _intraparenchymal,
    "subdural": _subdural,
    "epidural": _epidural,
    "subarachnoid": _subarachnoid,
    "intraventricular": _intraventricular,
}


def _plant_lookalikes(rng: np.random.Generator, a: _Anatomy, hu: np.ndarray, bleeds: np.ndarray) -> list[str]:
    planted = []
    free = a.brain.mask & ~bleeds
    for _ in range(int(rng.integers(0, 3))):  # calcifications: pineal, choroid plexus
        centre = _point_inside(rng, a.brain, margin=0.5)
        hu[_ellipsoid(a.grid, a.shape, centre, tuple(rng.uniform(1.5, 3.0, 3))).mask & free] = rng.uniform(
            *CALCIFICATION
        )
        planted.append("calcification")
    for _ in range(int(rng.integers(0, 3))):  # vessels: tubes along the slice direction, slightly dense
        y, x = _point_inside(rng, a.brain, margin=0.7)[1:]
        radius = rng.uniform(1.5, 2.5)
        hu[((a.grid[1] - y) ** 2 + (a.grid[2] - x) ** 2 <= radius**2) & free] = rng.uniform(*VESSEL)
        planted.append("vessel")
    if rng.random() < 0.3:  # falx calcification: a thin dense plate in the midline
        plate = (np.abs(a.grid[2]) < 1.0) & (np.abs(a.grid[1] - rng.uniform(-30, 10)) < rng.uniform(5, 15))
        hu[plate & (a.grid[0] > 10) & free] = rng.uniform(*CALCIFICATION)
        planted.append("falx calcification")
    if rng.random() < 0.3:  # dense superior sagittal sinus: 50-65 HU at the posterior midline, under the skull
        sinus = _surface_band(a, 4.0) & (np.abs(a.grid[2]) < 4.0) & (a.grid[1] > a.brain.radii[1] * 0.5)
        hu[sinus & free] = rng.uniform(50.0, 65.0)
        planted.append("dense sinus")
    if rng.random() < 0.4:  # beam hardening between the petrous bones: a brighter posterior fossa band
        fossa = (a.grid[0] < -a.brain.radii[0] * 0.35) & (a.grid[1] > 0) & free
        hu[fossa] += rng.uniform(6.0, 14.0)
        planted.append("beam hardening")
    return planted


def ct_geometry(
    rng: np.random.Generator, max_voxels: float = 16e6
) -> tuple[tuple[int, int, int], tuple[float, float, float]]:
    """A scanner's acquisition of a head: field of view 180-320 mm, matrix 256-512, slices 0.625-5 mm over
    100-190 mm; slices are thickened (up to 5 mm) while the volume holds more than `max_voxels`."""
    fov = rng.uniform(180.0, 320.0)
    matrix = int(rng.choice([256, 384, 512]))
    thickness = float(rng.choice([0.625, 1.0, 1.25, 2.5, 3.0, 5.0]))
    extent = rng.uniform(100.0, 190.0)
    while round(extent / thickness) * matrix * matrix > max_voxels and thickness < 5.0:
        thickness = {0.625: 1.25, 1.0: 2.5, 1.25: 2.5, 2.5: 5.0, 3.0: 5.0}[thickness]
    pixel = round(fov / matrix, 4)
    return (max(8, round(extent / thickness)), matrix, matrix), (thickness, pixel, pixel)
