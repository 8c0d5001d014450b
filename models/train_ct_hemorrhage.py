"""Train ct-hemorrhage on procedural CT heads of varied acquisition, seeded, on the CPU.

    python -m models.train_ct_hemorrhage [--seed 0] [--steps 2000] [--out models/builtin/ct-hemorrhage/weights.pt]

A pool of heads is generated once on the model grid (5 x 1.5 x 1.5 mm): most
drawn there directly with a random field of view and extent, a quarter drawn
at a scanner's own geometry (models/phantoms/ct_head_varied.ct_geometry: thin
slices, fine matrices) and resampled exactly as the detector resamples, and a
few of the fixed-geometry phantoms the demo sends (models/phantoms/ct_head.py),
so the demo's studies stay in the training domain. Each step
trains on random crops the size of the detector's sliding window, centred on a
bleed, on an interior look-alike (blood-like density that is not blood: the
halo of a calcification, a vessel, the falx, a dense sinus, beam hardening),
on the blurred brain-skull interface, or anywhere (CROP_SHARES).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from models.detector import resample
from models.phantoms.ct_head import ct_head as fixed_ct_head
from models.phantoms.ct_head_varied import ct_geometry, ct_head
from models.registry import builtin_spec
from models.training import command_line, fit


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 2400
    batch: int = 4
    pool: int = 300
    native_share: float = 0.25  # drawn at a scanner's geometry and resampled
    fixed_share: float = 0.1  # the demo's fixed-geometry phantom
    crop: tuple[int, int, int] = (16, 64, 64)  # the manifest's patch_size when it has one
    lr: float = 2e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("ct-hemorrhage")
    manifest = spec.manifest
    rng = np.random.default_rng(config.seed)
    crop = manifest.preprocessing.patch_size or config.crop
    window = manifest.preprocessing.window
    spacing = manifest.preprocessing.spacing_mm
    pool = [_pooled(*_drawn(rng, manifest, config), spacing) for _ in range(config.pool)]
    log(f"{config.pool} heads generated")

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(config.batch):
            head = pool[int(rng.integers(len(pool)))]
            corner = _crop_corner(rng, head, crop)
            region = tuple(slice(c, c + n) for c, n in zip(corner, crop, strict=True))
            xs.append(window.apply(head.hu[region]))
            ys.append(head.bleed[region].astype(np.float32))
        flips = rng.random(len(xs)) < 0.5  # left-right mirror
        xs = [x[..., ::-1] if f else x for x, f in zip(xs, flips, strict=True)]
        ys = [y[..., ::-1] if f else y for y, f in zip(ys, flips, strict=True)]
        return torch.from_numpy(np.stack(xs)[:, None].copy()), torch.from_numpy(np.stack(ys)[:, None].copy())

    return fit(spec, batch, config, out, log)


def _drawn(rng: np.random.Generator, manifest, config: TrainConfig) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    draw = rng.random()
    if draw < config.fixed_share:
        p = fixed_ct_head(rng)
        return p.hu, p.bleed_mask
    return _on_model_grid(rng, manifest, draw < config.fixed_share + config.native_share)


def _on_model_grid(rng: np.random.Generator, manifest, native: bool) -> tuple[np.ndarray, np.ndarray]:  # noqa: ANN001
    """One head's HU and bleed mask on the model grid."""
    spacing = manifest.preprocessing.spacing_mm
    if not native:
        fov, extent = rng.uniform(180.0, 320.0), rng.uniform(100.0, 190.0)
        shape = (round(extent / spacing[0]), round(fov / spacing[1]), round(fov / spacing[2]))
        p = ct_head(rng, shape=shape, spacing_mm=spacing)
        return p.hu, p.bleed_mask
    shape, native_spacing = ct_geometry(rng, max_voxels=6e6)
    p = ct_head(rng, shape=shape, spacing_mm=native_spacing)
    hu = resample(manifest, torch.from_numpy(p.hu)[None, None], native_spacing)[0, 0].numpy()
    mask = resample(manifest, torch.from_numpy(p.bleed_mask.astype(np.float32))[None, None], native_spacing)
    return hu, mask[0, 0].numpy() >= 0.5


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place, then calibrate them (`dicomnode models train ct-hemorrhage`)."""
    from models.phantom_evaluation import CALIBRATION_SEED, calibrate_builtin, ct_head_cases

    record = train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))
    record["calibration"] = calibrate_builtin("ct-hemorrhage", ct_head_cases(CALIBRATION_SEED, 80, max_voxels=8e6))
    return record


@dataclass(frozen=True)
class _Head:
    """A pooled head on the model grid and the voxels its crops centre on."""

    hu: np.ndarray
    bleed: np.ndarray
    targets: dict[str, np.ndarray]  # kind of crop -> (n, 3) voxel indices


# Where crops centre: a bleed; an interior look-alike (blood-dense but not blood, away from the skull: the halo of
# a calcification, a vessel, the falx, a dense sinus, beam hardening); the blurred brain-skull interface; anywhere.
CROP_SHARES = {"bleed": 1 / 3, "interior": 1 / 4, "interface": 1 / 6, "anywhere": 1 / 4}
_SKULL_MARGIN_MM = 6.0


def _pooled(hu: np.ndarray, bleed: np.ndarray, spacing: tuple[float, ...]) -> _Head:
    dense = (hu > 45) & (hu < 120) & ~bleed
    bone, count = ndimage.label(hu > 300)
    if count:
        skull = bone == 1 + int(np.argmax(np.bincount(bone.ravel())[1:]))  # the largest bone: the skull
        near_skull = ndimage.distance_transform_edt(~skull, sampling=spacing) <= _SKULL_MARGIN_MM
    else:
        near_skull = np.zeros_like(bleed)
    targets = {
        "bleed": np.argwhere(bleed),
        "interior": np.argwhere(dense & ~near_skull),
        "interface": np.argwhere(dense & near_skull),
    }
    return _Head(hu, bleed, targets)


def _crop_corner(rng: np.random.Generator, head: _Head, crop: tuple[int, ...]) -> tuple[int, ...]:
    """A crop's corner, centred on a voxel of the kind CROP_SHARES draws (anywhere when the head has none)."""
    limits = [max(n - c, 0) for n, c in zip(head.hu.shape, crop, strict=True)]
    kind = str(rng.choice(list(CROP_SHARES), p=list(CROP_SHARES.values())))
    points = head.targets.get(kind)
    if points is not None and len(points):
        target = points[int(rng.integers(len(points)))]
        return tuple(int(np.clip(t - c // 2, 0, lim)) for t, c, lim in zip(target, crop, limits, strict=True))
    return tuple(int(rng.integers(lim + 1)) for lim in limits)


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
