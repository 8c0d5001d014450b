"""Procedural frontal abdomen radiographs (KUB, supine or erect): the films a chest model must refuse.

The same acquisitions as the chest films (models/phantoms/chest_xr.py: field of view, aspect, position and
rotation, collimation, grey-level curve, edge enhancement, exposure, noise) over an abdomen: soft tissue that is
thickest in the middle, the lumbar spine, the lowest ribs, the iliac wings and sacrum, the liver, and bowel gas
(the colon's frame, small-bowel loops, and in some films dilated loops as large as a lung field: an obstruction,
the hard case for a "two lung fields" check). No real data. Arrays are (rows, columns), row 0 at the head end.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from models.phantoms.chest_xr import BONE, SOFT_TISSUE, UNEXPOSED, film_coordinates, grey_curve, shaped, upsampled

GAS = 0.22  # how much a gas-filled loop darkens the soft tissue it crosses (lungs darken it by about 0.36)


def abdomen_radiograph(rng: np.random.Generator, size: int = 256) -> tuple[np.ndarray, tuple[float, float]]:
    """One film whose longest side is `size` pixels, and its pixel spacing (mm)."""
    a = {
        "aspect": float(rng.uniform(0.8, 1.25)),  # rows / columns
        "fov_mm": rng.uniform(330.0, 450.0),
        "unit_mm": rng.uniform(150.0, 215.0),  # half the abdomen's width, from thin to wide
        "shift_mm": rng.uniform(-30.0, 30.0, 2),
        "rotation": np.deg2rad(rng.uniform(-6.0, 6.0)),
    }
    final = shaped(size, a["aspect"])
    drawn = min(size, 512)
    shape = shaped(drawn, a["aspect"])
    spacing = a["fov_mm"] / drawn
    x, y, _ = film_coordinates(shape, spacing, a)

    half_width = rng.uniform(0.85, 1.0) * (1.0 + 0.06 * y)  # wider towards the pelvis
    depth = np.sqrt(np.clip(1.0 - (x / half_width) ** 2, 0.0, 1.0))  # path length through the body
    image = np.where(depth > 0, SOFT_TISSUE * (0.75 + 0.3 * depth), 0.0).astype(np.float32)
    body = depth > 0
    liver = ((x + 0.45) / 0.5) ** 2 + ((y + 0.55) / 0.45) ** 2 <= 1.0
    image[liver & body] += rng.uniform(0.02, 0.05)
    image -= _gas(rng, x, y) * body
    image += _spine(rng, x, y) + _pelvis(rng, x, y) + _lower_ribs(rng, x, y)
    if rng.random() < 0.7:  # the side marker near a top corner
        cx, cy = rng.choice([-1.0, 1.0]) * rng.uniform(0.7, 1.0), rng.uniform(-1.1, -0.85)
        image[(np.abs(x - cx) < 0.05) & (np.abs(y - cy) < 0.07)] = 1.0
    _collimate(rng, image)

    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.6, 1.4) / spacing)
    image = grey_curve(rng, image, spacing)
    image += rng.normal(0.0, rng.uniform(0.006, 0.025), image.shape).astype(np.float32)
    if final != shape:
        image, _ = upsampled(image, np.zeros(shape, bool), final)
        spacing *= drawn / size
    return image.astype(np.float32), (spacing, spacing)


def _gas(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """How much bowel gas darkens each pixel: pockets along the colon's frame, small-bowel loops, and sometimes
    dilated loops."""
    out = np.zeros_like(x)
    frame = [(-0.55, 0.45), (-0.6, -0.35), (-0.2, -0.45), (0.25, -0.45), (0.6, -0.5), (0.62, 0.35), (0.15, 0.6)]
    for (x0, y0), (x1, y1) in zip(frame, frame[1:], strict=False):
        for t in np.linspace(0.0, 1.0, 6):
            if rng.random() < 0.55:
                cx, cy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
                out += _blob(rng, x, y, (cx, cy), rng.uniform(0.05, 0.11)) * rng.uniform(0.5, 1.0)
    for _ in range(int(rng.integers(3, 20))):
        centre = (rng.uniform(-0.5, 0.5), rng.uniform(-0.3, 0.5))
        out += _blob(rng, x, y, centre, rng.uniform(0.025, 0.07)) * rng.uniform(0.4, 1.0)
    if rng.random() < 0.3:  # dilated loops (an obstruction): wide, stacked, on both sides
        for _ in range(int(rng.integers(2, 7))):
            centre = (rng.uniform(-0.6, 0.6), rng.uniform(-0.5, 0.5))
            out += _blob(rng, x, y, centre, rng.uniform(0.1, 0.22)) * rng.uniform(0.7, 1.2)
    return np.clip(out, 0.0, 1.3) * GAS


def _blob(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, centre: tuple[float, float], r: float) -> np.ndarray:
    """A rounded gas pocket with an uneven edge, 1 inside."""
    ry = r * rng.uniform(0.6, 1.2)
    angle = np.arctan2(y - centre[1], x - centre[0])
    wobble = 1.0 + 0.15 * np.sin(rng.integers(3, 7) * angle + rng.uniform(0, 2 * np.pi))
    return ((((x - centre[0]) / r) ** 2 + ((y - centre[1]) / ry) ** 2) <= wobble**2).astype(np.float32)


def _spine(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Lumbar vertebral bodies with their discs, and the pedicles' rings."""
    out = np.zeros_like(x)
    cx, width, height = rng.uniform(-0.04, 0.04), rng.uniform(0.09, 0.12), rng.uniform(0.17, 0.21)
    top = rng.uniform(-1.3, -1.1)
    for k in range(9):
        y0 = top + k * height * 1.18
        out += ((np.abs(x - cx) < width) & (y > y0) & (y < y0 + height)) * BONE * rng.uniform(0.8, 1.2)
        for sign in (-1.0, 1.0):
            r = np.hypot((x - cx - sign * width * 0.6) / 0.025, (y - y0 - height * 0.3) / 0.035)
            out += ((r > 0.6) & (r < 1.0)) * BONE * 0.6
    return out


def _pelvis(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Iliac wings (a fan with a denser rim), the sacrum, and the femoral heads at the film's lower edge."""
    out = np.zeros_like(x)
    top = rng.uniform(0.35, 0.6)
    for sign in (-1.0, 1.0):
        r = np.hypot((x - sign * 0.2) / 0.55, (y - top - 0.55) / 0.6)
        wing = (r < 1.0) & (x * sign > 0.12) & (y > top)
        out += wing * BONE * 0.45 + (wing & (r > 0.9)) * BONE * 0.6
        head = np.hypot(x - sign * 0.5, y - top - 0.85) < 0.14
        out += head * BONE * 0.9
    sacrum = (np.abs(x) < 0.16 - 0.1 * (y - top)) & (y > top) & (y < top + 0.6)
    return out + sacrum * BONE * 0.5


def _lower_ribs(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for sign in (-1.0, 1.0):
        for k in range(int(rng.integers(1, 4))):
            curve = -0.95 + k * 0.15 + 0.3 * (x * sign - 0.1) ** 2 + 0.2 * x * sign
            out += (np.abs(y - curve) < 0.025) * ((x * sign) > 0.12) * BONE * rng.uniform(0.5, 0.9)
    return out


def _collimate(rng: np.random.Generator, image: np.ndarray) -> None:
    """Unexposed borders where the radiographer collimated, in half of the films."""
    if rng.random() >= 0.5:
        return
    rows, cols = image.shape
    for axis, n in ((0, rows), (1, cols)):
        for end in (0, 1):
            if rng.random() < 0.6:
                width = int(rng.uniform(0.02, 0.08) * n)
                index = [slice(None), slice(None)]
                index[axis] = slice(0, width) if end == 0 else slice(n - width, n)
                image[tuple(index)] = UNEXPOSED
