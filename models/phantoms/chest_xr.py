"""Procedural frontal chest radiographs, with and without pneumothorax, over the acquisitions a hospital sends.

Grey levels are attenuation-like (brighter = denser, as MONOCHROME2 shows a
radiograph): soft-tissue thorax, dark lungs with vessel markings branching
from the hila, mediastinum and heart, ribs and clavicles, diaphragm domes.
A pneumothorax is air between the chest wall and the collapsed lung: a
darker rim at the apex and lateral border with no lung markings, bounded by
a thin bright visceral pleural line.

Each film draws its acquisition (domain randomisation): field of view and
aspect (soft tissue to the edges, or air around the body), position and
rotation, PA or AP, collimation, side markers, tubes, lines and ECG leads,
grey-level curve, edge enhancement, exposure and noise. Look-alikes that are
not pneumothorax: skin folds (an edge across the lung, markings continue on
both sides) and the medial border of the scapula. No real data.

Arrays are (rows, columns); row 0 is the top (head end); the patient's right
is on the image's left, as on a PA film. Sizes are physical: the same seed
gives the same film at any `size`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

SOFT_TISSUE, LUNG, PNEUMOTHORAX_AIR, MEDIASTINUM, BONE = 0.52, 0.16, 0.07, 0.62, 0.14  # bone adds
UNEXPOSED, METAL = 0.95, 1.0
DRAWN_SIZE = 512  # the largest grid anatomy is drawn on
_UNIT_MM = 179.0  # millimetres per unit of the anatomy's coordinates for an average thorax (half-width 154 mm)


@dataclass(frozen=True)
class ChestPhantom:
    image: np.ndarray  # float32 (rows, columns), about 0..1
    pneumothorax_mask: np.ndarray  # bool, the ground truth: the air rim
    spacing_mm: tuple[float, float]
    side: str | None  # "right" or "left" (the patient's), None without pneumothorax
    lookalikes: list[str] = field(default_factory=list)
    acquisition: dict[str, str] = field(default_factory=dict)  # what was drawn, for evaluation subgroups


def chest_radiograph(
    rng: np.random.Generator,
    size: int = 256,
    spacing_mm: float | None = None,
    pneumothorax: bool | None = None,
    lookalikes: bool = True,
) -> ChestPhantom:
    """One film whose longest side is `size` pixels; `spacing_mm` None: the field of view decides it (300-450 mm
    along the longest side). `pneumothorax` None: present in half the cases at random."""
    a = _acquisition(rng)
    final = shaped(size, a["aspect"])
    drawn = min(size, DRAWN_SIZE)  # a detector-sized film is drawn at 512 px and interpolated up
    shape = shaped(drawn, a["aspect"])
    spacing = (spacing_mm if spacing_mm is not None else a["fov_mm"] / size) * size / drawn
    x, y, px_per_unit = film_coordinates(shape, spacing, a)
    image = np.zeros(shape, np.float32)
    thorax = (x / a["thorax_rx"]) ** 2 + ((y - 0.05) / a["thorax_ry"]) ** 2 <= 1.0
    image[thorax] = SOFT_TISSUE
    if a["arms"]:
        image[(np.abs(x) > 0.98) & (np.abs(x) < 1.25) & (y > -0.9)] = SOFT_TISSUE * 0.85
    lungs = {side: _lung(rng, x, y, side) for side in ("right", "left")}
    lung_any = lungs["right"] | lungs["left"]
    image[lung_any] = LUNG

    present = bool(rng.random() < 0.5) if pneumothorax is None else pneumothorax
    side = str(rng.choice(["right", "left"])) if present else None
    ptx = _pneumothorax_rim(rng, lungs[side], side, x, spacing) if side else np.zeros_like(lung_any)

    image += _markings(rng, x, y, spacing) * (lung_any & ~ptx)
    image[ptx] = PNEUMOTHORAX_AIR + rng.uniform(-0.02, 0.03)
    if side:
        pleura = ndimage.binary_dilation(ptx, iterations=max(1, round(0.8 / spacing))) & lungs[side] & ~ptx
        image[pleura] += rng.uniform(0.08, 0.25)
    image += _ribs_and_clavicles(rng, x, y) * thorax
    image[_mediastinum(rng, x, y, a["ap"])] = MEDIASTINUM
    planted = _plant_lookalikes(rng, x, y, image, lung_any, a["ap"]) if lookalikes else []
    planted += _plant_devices(rng, x, y, image, px_per_unit)
    _collimate(rng, image, a, lung_any)

    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.6, 1.4) / spacing)
    image = grey_curve(rng, image, spacing)
    image += rng.normal(0.0, rng.uniform(0.006, 0.025), image.shape).astype(np.float32)
    if final != shape:
        image, ptx = upsampled(image, ptx, final)
        image += rng.normal(0.0, 0.01, final).astype(np.float32)  # the detector's own pixel noise
        spacing *= drawn / size
    described = {
        "view": "AP" if a["ap"] else "PA",
        "field": "soft tissue to the edge" if a["fov_mm"] * 0.5 / a["unit_mm"] < a["thorax_rx"] else "air around",
        "collimated": "yes" if a["collimation"] else "no",
    }
    return ChestPhantom(image.astype(np.float32), ptx, (spacing, spacing), side, planted, described)


def shaped(size: int, aspect: float) -> tuple[int, int]:
    return (size, max(8, round(size / aspect))) if aspect >= 1 else (max(8, round(size * aspect)), size)


def upsampled(image: np.ndarray, mask: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import torch

    up = torch.nn.functional.interpolate(torch.from_numpy(image)[None, None], size=shape, mode="bilinear")
    grown = torch.nn.functional.interpolate(torch.from_numpy(mask.astype(np.float32))[None, None], size=shape)
    return up[0, 0].numpy(), grown[0, 0].numpy() > 0.5


def _acquisition(rng: np.random.Generator) -> dict:
    thorax_half_width = rng.uniform(135.0, 200.0)
    return {
        "aspect": float(rng.choice([rng.uniform(0.8, 1.0), rng.uniform(1.0, 1.25)])),  # rows / columns
        "fov_mm": rng.uniform(280.0, 440.0),
        "unit_mm": _UNIT_MM * thorax_half_width / 154.0,
        "shift_mm": rng.uniform(-25.0, 25.0, 2),
        "rotation": np.deg2rad(rng.uniform(-7.0, 7.0)),
        "thorax_rx": rng.uniform(0.8, 0.92),
        "thorax_ry": rng.uniform(0.95, 1.05),
        "arms": rng.random() < 0.3,
        "ap": rng.random() < 0.4,
        "collimation": rng.random() < 0.5,
    }


def film_coordinates(shape: tuple[int, int], spacing: float, a: dict) -> tuple[np.ndarray, np.ndarray, float]:
    """Anatomy coordinates of every pixel (about -1..1 over the thorax, y down), and pixels per unit."""
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    ymm = (rows - (shape[0] - 1) / 2) * spacing - a["shift_mm"][0]
    xmm = (cols - (shape[1] - 1) / 2) * spacing - a["shift_mm"][1]
    c, s = np.cos(a["rotation"]), np.sin(a["rotation"])
    x, y = (c * xmm - s * ymm) / a["unit_mm"], (s * xmm + c * ymm) / a["unit_mm"]
    return x, y, a["unit_mm"] / spacing


def _lung(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, side: str) -> np.ndarray:
    """One lung: a tall rounded shape above its diaphragm dome; image left is the patient's right."""
    sign = -1.0 if side == "right" else 1.0
    cx, cy = sign * rng.uniform(0.36, 0.44), rng.uniform(-0.12, -0.02)
    rx, ry = rng.uniform(0.26, 0.32), rng.uniform(0.6, 0.7)
    body = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 4 <= 1.0
    dome = cy + ry * rng.uniform(0.55, 0.75) - 0.35 * ((x - cx) / rx) ** 2
    medial = (x - sign * 0.12) * sign > 0  # the mediastinum's edge
    return body & (y < dome) & medial


def _pneumothorax_rim(
    rng: np.random.Generator, lung: np.ndarray, side: str, x: np.ndarray, spacing: float
) -> np.ndarray:
    """Air along the apex and lateral chest wall: lung pixels within a depth of that part of the lung's border
    (never along the mediastinum or the diaphragm, where an upright film does not show it)."""
    wall = chest_wall(lung, side, x)
    rows = np.nonzero(lung.any(axis=1))[0]
    top, bottom = rows.min(), rows.max()
    depth = rng.uniform(5.0, 40.0) / spacing  # pixels; thin rims are the hard cases
    apical_only = rng.random() < 0.25
    reach = top + (rng.uniform(0.2, 0.4) if apical_only else rng.uniform(0.4, 0.9)) * (bottom - top)
    row = np.arange(lung.shape[0])[:, None]
    return lung & (ndimage.distance_transform_edt(~wall) <= depth) & (row <= reach)


def chest_wall(lung: np.ndarray, side: str, x: np.ndarray) -> np.ndarray:
    """The lung's border along the lateral chest wall and over its apex (top 15%): where an upright film shows a
    pneumothorax."""
    sign = -1.0 if side == "right" else 1.0
    rows = np.nonzero(lung.any(axis=1))[0]
    top, bottom = rows.min(), rows.max()
    apex = np.arange(lung.shape[0])[:, None] < top + 0.15 * (bottom - top)
    border = lung & ~ndimage.binary_erosion(lung)
    return border & (((x - float(x[lung].mean())) * sign > 0) | apex)


def _markings(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, spacing: float) -> np.ndarray:
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
    texture = ndimage.gaussian_filter(rng.normal(size=x.shape), 2.1 / spacing)
    texture *= 0.03 / max(float(texture.std()), 1e-6) * 0.3
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


def _mediastinum(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, ap: bool) -> np.ndarray:
    column = (np.abs(x - rng.uniform(-0.02, 0.02)) < rng.uniform(0.1, 0.14)) & (y > -0.95) & (y < 0.5)
    width = rng.uniform(0.24, 0.32) * (1.15 if ap else 1.0)  # an AP film magnifies the heart
    heart = ((x - rng.uniform(0.05, 0.12)) / width) ** 2 + ((y - 0.3) / 0.24) ** 2 <= 1.0
    return column | heart


def _plant_lookalikes(
    rng: np.random.Generator, x: np.ndarray, y: np.ndarray, image: np.ndarray, lungs: np.ndarray, ap: bool
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
    if rng.random() < (0.8 if ap else 0.4):  # medial border of the scapula: a band over the upper lateral lung
        sign = rng.choice([-1.0, 1.0])
        curve = sign * (0.62 - 0.1 * (y + 0.5) ** 2)
        image[(np.abs(x - curve) < 0.02) & (y < 0.0) & (y > -0.75)] += 0.05
        planted.append("scapula")
    return planted


def _plant_devices(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, image: np.ndarray, ppu: float) -> list:
    """Tubes, lines, ECG electrodes and a side marker: bright, sharp, anywhere a real film has them."""
    planted = []
    if rng.random() < 0.3:  # endotracheal tube down the midline
        cx = rng.uniform(-0.03, 0.03)
        image[(np.abs(x - cx) < 0.012) & (y < rng.uniform(-0.55, -0.35))] = METAL * 0.8
        planted.append("endotracheal tube")
    if rng.random() < 0.3:  # central line from a shoulder into the mediastinum
        sign = rng.choice([-1.0, 1.0])
        curve = -0.75 + 0.5 * (np.abs(x) - 0.05) ** 2
        image[(np.abs(y - curve) < 0.006) & (x * sign > 0.02) & (x * sign < 0.6)] = METAL * 0.85
        planted.append("central line")
    if rng.random() < 0.3:  # ECG electrodes: rings anywhere over the chest
        for _ in range(int(rng.integers(2, 6))):
            cx, cy = rng.uniform(-0.8, 0.8), rng.uniform(-0.8, 0.6)
            r = np.hypot(x - cx, y - cy)
            image[(r > 0.025) & (r < 0.035)] = METAL
        planted.append("ECG electrodes")
    if rng.random() < 0.7:  # the radiographer's side marker near a top corner
        cx, cy = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.1), rng.uniform(-1.1, -0.8)
        image[(np.abs(x - cx) < 0.05) & (np.abs(y - cy) < 0.07) & ~((np.abs(x - cx) < 0.025) & (y - cy < 0.04))] = METAL
        planted.append("marker")
    return planted


def _collimate(rng: np.random.Generator, image: np.ndarray, a: dict, lungs: np.ndarray) -> None:
    """Unexposed borders (white on MONOCHROME2) where the radiographer collimated, short of the lungs."""
    if not a["collimation"]:
        return
    rows, cols = image.shape
    for axis, n in ((0, rows), (1, cols)):
        inside = np.nonzero(lungs.any(axis=1 - axis))[0]
        room = (int(inside.min()), n - 1 - int(inside.max())) if len(inside) else (n // 4, n // 4)
        for end in (0, 1):
            if rng.random() < 0.7:
                width = int(rng.uniform(0.02, 0.12) * n * min(1.0, room[end] / (0.12 * n)))
                index = [slice(None), slice(None)]
                index[axis] = slice(0, width) if end == 0 else slice(n - width, n)
                image[tuple(index)] = UNEXPOSED


def grey_curve(rng: np.random.Generator, image: np.ndarray, spacing: float) -> np.ndarray:
    """The detector's and the vendor's processing: edge enhancement, a tone curve, exposure, a heel gradient."""
    if rng.random() < 0.6:
        image = image + rng.uniform(0.2, 1.2) * (image - ndimage.gaussian_filter(image, 12.0 / spacing))
    image = np.clip(image, 0.0, None) ** rng.uniform(0.65, 1.5)
    heel = np.linspace(-1, 1, image.shape[0], dtype=np.float32)[:, None] * rng.uniform(-0.05, 0.05)
    return image * rng.uniform(0.7, 1.3) + rng.uniform(-0.1, 0.1) + heel
