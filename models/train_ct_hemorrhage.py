"""Train ct-hemorrhage on procedural CT heads of varied acquisition, seeded, on the CPU.

    python -m models.train_ct_hemorrhage [--seed 0] [--steps 2000] [--out models/builtin/ct-hemorrhage/weights.pt]

A pool of heads is generated once on the model grid (5 x 1.5 x 1.5 mm): most
drawn there directly with a random field of view and extent, a quarter drawn
at a scanner's own geometry (models/phantoms/ct_head.ct_geometry: thin slices,
fine matrices) and resampled exactly as the detector resamples. Each step
trains on random crops the size of the detector's sliding window: a third
centred on a bleed, a third on a hard negative (blood-like density that is not
blood: the blurred brain-skull interface, a dense sinus, beam hardening), a
third anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.detector import resample
from models.phantoms.ct_head_varied import ct_geometry, ct_head
from models.registry import builtin_spec
from models.training import command_line, fit


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 2000
    batch: int = 4
    pool: int = 240
    native_share: float = 0.25  # drawn at a scanner's geometry and resampled
    crop: tuple[int, int, int] = (16, 64, 64)  # the manifest's patch_size when it has one
    lr: float = 2e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("ct-hemorrhage")
    manifest = spec.manifest
    rng = np.random.default_rng(config.seed)
    crop = manifest.preprocessing.patch_size or config.crop
    window = manifest.preprocessing.window
    pool = [_on_model_grid(rng, manifest, rng.random() < config.native_share) for _ in range(config.pool)]
    log(f"{config.pool} heads generated")

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(config.batch):
            hu, bleed = pool[int(rng.integers(len(pool)))]
            corner = _crop_corner(rng, hu, bleed, crop)
            region = tuple(slice(c, c + n) for c, n in zip(corner, crop, strict=True))
            xs.append(window.apply(hu[region]))
            ys.append(bleed[region].astype(np.float32))
        flips = rng.random(len(xs)) < 0.5  # left-right mirror
        xs = [x[..., ::-1] if f else x for x, f in zip(xs, flips, strict=True)]
        ys = [y[..., ::-1] if f else y for y, f in zip(ys, flips, strict=True)]
        return torch.from_numpy(np.stack(xs)[:, None].copy()), torch.from_numpy(np.stack(ys)[:, None].copy())

    return fit(spec, batch, config, out, log)


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


def _crop_corner(rng: np.random.Generator, hu: np.ndarray, bleed: np.ndarray, crop: tuple[int, ...]) -> tuple[int, ...]:
    """A third of crops centre on a bleed, a third on a hard negative, a third anywhere."""
    limits = [max(n - c, 0) for n, c in zip(hu.shape, crop, strict=True)]
    draw = rng.random()
    if draw < 1 / 3 and bleed.any():
        candidates = bleed
    elif draw < 2 / 3:
        candidates = (hu > 45) & (hu < 120) & ~bleed
    else:
        candidates = None
    if candidates is not None and candidates.any():
        points = np.argwhere(candidates)
        target = points[int(rng.integers(len(points)))]
        return tuple(int(np.clip(t - c // 2, 0, lim)) for t, c, lim in zip(target, crop, limits, strict=True))
    return tuple(int(rng.integers(lim + 1)) for lim in limits)


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
