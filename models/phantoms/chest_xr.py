"""Procedural frontal chest radiographs (PA), with and without pneumothorax, and its look-alikes.

Grey levels are attenuation-like (brighter = denser, as MONOCHROME2 shows a
radiograph): soft-tissue thorax, dark lungs with vessel markings branching
from the hila, mediastinum and heart, ribs and clavicles, diaphragm domes.
A pneumothorax is air between the chest wall and the collapsed lung: a
darker rim at the apex and lateral border with no lung markings, bounded by
a thin bright visceral pleural line. Look-alikes that are not pneumothorax:
skin folds (an edge across the lung, markings continue on both sides) and the
medial border of the scapula. Blurred and noised like a detector. No real data.

Arrays are (rows, columns); row 0 is the top (head end); the patient's right
is on the image's left, as on a PA film.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

SOFT_TISSUE, LUNG, PNEUMOTHORAX_AIR, MEDIASTINUM, BONE = 0.52, 0.16, 0.07, 0.62, 0.14  # bone adds


@dataclass(frozen=True)
class ChestPhantom:
    image: np.ndarray  # float32 (rows, columns), about 0..1
    pneumothorax_mask: np.ndarray  # bool, the ground truth: the air rim
    spacing_mm: tuple[float, float]
    side: str | None  # "right" or "left" (the patient's), None without pneumothorax
    lookalikes: list[str] = field(default_factory=list)


def chest_radiograph(
    rng: np.random.Generator,
    size: int = 256,
    spacing_mm: float = 1.4,
    pneumothorax: bool | None = None,
    lookalikes: bool = True,
) -> ChestPhantom:
    """One phantom; `pneumothorax` None: present in half the cases at random."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    y, x = (y / (size - 1)) * 2 - 1, (x / (size - 1)) * 2 - 1  # -1..1, y down
    image = np.zeros((size, size), np.float32)
    thorax = ((x / rng.uniform(0.8, 0.92)) ** 2 + ((y - 0.05) / rng.uniform(0.95, 1.05)) ** 2) <= 1.0
    image[thorax] = SOFT_TISSUE
    lungs = {side: _lung(rng, x, y, side) for side in ("right", "left")}
    lung_any = lungs["right"] | lungs["left"]
    image[lung_any] = LUNG

    present = bool(rng.random() < 0.5) if pneumothorax is None else pneumothorax
    side = str(rng.choice(["right", "left"])) if present else None
    ptx = _pneumothorax_rim(rng, lungs[side], side) if side else np.zeros_like(lung_any)

    image += _markings(rng, x, y, size) * (lung_any & ~ptx)
    image[ptx] = PNEUMOTHORAX_AIR
    if side:
        pleura = ndimage.binary_dilation(ptx, iterations=1) & lungs[side] & ~ptx
        image[pleura] += rng.uniform(0.12, 0.25)
    image += _ribs_and_clavicles(rng, x, y) * thorax
    image[_mediastinum(rng, x, y)] = MEDIASTINUM
    planted = _plant_lookalikes(rng, x, y, image, lung_any) if lookalikes else []

    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.6, 1.2))
    image = image ** rng.uniform(0.8, 1.25) * rng.uniform(0.85, 1.15) + rng.uniform(-0.05, 0.05)
    image += rng.normal(0.0, rng.uniform(0.008, 0.02), image.shape)
    return ChestPhantom(image.astype(np.float32), ptx, (spacing_mm, spacing_mm), side, planted)


def _lung(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, side: str) -> np.ndarray:
    """One lung: a tall rounded shape above its diaphragm dome; image left is the patient's right."""
    sign = -1.0 if side == "right" else 1.0
    cx, cy = sign * rng.uniform(0.36, 0.44), rng.uniform(-0.12, -0.02)
    rx, ry = rng.uniform(0.26, 0.32), rng.uniform(0.6, 0.7)
    body = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 4 <= 1.0
    dome = cy + ry * rng.uniform(0.55, 0.75) - 0.35 * ((x - cx) / rx) ** 2
    medial = (x - sign * 0.12) * sign > 0  # the mediastinum's edge
    return body & (y < dome) & medial


def _pneumothorax_rim(rng: np.random.Generator, lung: np.ndarray, side: str) -> np.ndarray:
    """Air along the apex and lateral chest wall: lung pixels within a depth of that part of the lung's border
    (never along the mediastinum or the diaphragm, where an upright film does not show it)."""
    sign = -1.0 if side == "right" else 1.0
    size = len(lung)
    rows = np.nonzero(lung.any(axis=1))[0]
    top, bottom = rows.min(), rows.max()
    centre = np.nonzero(lung.any(axis=0))[0].mean()
    row, col = np.mgrid[0:size, 0:size]
    border = lung & ~ndimage.binary_erosion(lung)
    wall = border & (((col - centre) * sign > 0) | (row < top + 0.15 * (bottom - top)))
    depth = rng.uniform(3.0, 26.0) * (size / 256)  # pixels; thin rims are the hard cases
    reach = top + rng.uniform(0.35, 0.9) * (bottom - top)  # how far down the lateral wall it extends
    rim = lung & (ndimage.distance_transform_edt(~wall) <= depth) & (row <= reach)
    return rim


def _markings(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Vessels branching out from each hilum, fading towards the periphery, plus fine texture."""
    out = np.zeros_like(x)
    for sign in (-1.0, 1.0):
        hx, hy = sign * rng.uniform(0.15, 0.22), rng.uniform(-0.1, 0.05)
        for _ in range(int(rng.integers(14, 22))):
            angle = rng.uniform(-0.45, 1.45) * np.pi * (1 if sign > 0 else -1) + (0 if sign > 0 else np.pi)
            length = rng.uniform(0.3, 0.6)
            ex, ey = hx + length * np.cos(angle), hy + length * np.sin(angle)
            out += _segment(x, y, (hx, hy), (ex, ey), width=rng.uniform(0.006, 0.014)) * rng.uniform(0.06, 0.12)
    fade = np.clip(1.2 - 1.3 * np.abs(x), 0.2, 1.0)
    texture = ndimage.gaussian_filter(rng.normal(size=(size, size)), 1.5) * 0.03
    return (out * fade + texture).astype(np.float32)


def _segment(x: np.ndarray, y: np.ndarray, a: tuple[float, float], b: tuple[float, float], width: float) -> np.ndarray:
    """A soft line from a to b: 1 on the line, falling off over `width`, thinner towards b."""
    ax, ay = a
    dx, dy = b[0] - ax, b[1] - ay
    t = np.clip(((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    dist = np.hypot(x - (ax + t * dx), y - (ay + t * dy))
    return np.exp(-((dist / (width * (1.2 - t))) ** 2))


def _ribs_and_clavicles(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for sign in (-1.0, 1.0):
        for k in range(int(rng.integers(8, 11))):
            y0 = -0.72 + k * rng.uniform(0.13, 0.16)
            curve = y0 + 0.35 * (x * sign - 0.1) ** 2 - 0.12 * x * sign
            band = np.abs(y - curve) < rng.uniform(0.018, 0.03)
            out += band * ((x * sign) > 0.08) * BONE * rng.uniform(0.6, 1.0)
        clavicle = np.abs(y - (-0.72 + 0.18 * (x * sign - 0.15))) < 0.025
        out += clavicle * ((x * sign) > 0.05) * ((x * sign) < 0.65) * BONE
    return out


def _mediastinum(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    column = (np.abs(x - rng.uniform(-0.02, 0.02)) < rng.uniform(0.1, 0.14)) & (y > -0.95) & (y < 0.5)
    heart = ((x - rng.uniform(0.05, 0.12)) / rng.uniform(0.24, 0.32)) ** 2 + ((y - 0.3) / 0.24) ** 2 <= 1.0
    return column | heart


def _plant_lookalikes(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, image: np.ndarray, lungs: np.ndarray
) -> list[str]:
    planted = []
    if rng.random() < 0.4:  # skin fold: a step in density along a curved line; markings continue across it
        sign = rng.choice([-1.0, 1.0])
        x0 = sign * rng.uniform(0.45, 0.65)
        curve = x0 + 0.15 * (y + 0.2) ** 2 * sign
        beyond = (x - curve) * sign > 0
        image[beyond & lungs] -= rng.uniform(0.03, 0.06)
        image[(np.abs(x - curve) < 0.008) & lungs] += 0.06
        planted.append("skin fold")
    if rng.random() < 0.4:  # medial border of the scapula: a faint band over the upper lateral lung
        sign = rng.choice([-1.0, 1.0])
        curve = sign * (0.62 - 0.1 * (y + 0.5) ** 2)
        image[(np.abs(x - curve) < 0.02) & (y < 0.0) & (y > -0.75)] += 0.05
        planted.append("scapula")
    return planted
