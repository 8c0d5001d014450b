"""Train ct-hemorrhage on procedural CT head phantoms, seeded, on the CPU.

    python -m models.train_ct_hemorrhage [--seed 0] [--steps 1000] [--out models/builtin/ct-hemorrhage/weights.pt]

A pool of phantoms is generated once; each step trains on random crops: a third
centred on a bleed, a third on a hard negative (blood-like density that is not
blood, mostly the blurred brain-skull interface), a third anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.phantoms.ct_head import HeadPhantom, ct_head
from models.registry import builtin_spec
from models.training import command_line, fit


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch: int = 4
    crop: tuple[int, int, int] = (16, 64, 64)
    pool: int = 120
    lr: float = 2e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("ct-hemorrhage")
    manifest = spec.manifest
    rng = np.random.default_rng(config.seed)
    spacing = manifest.preprocessing.spacing_mm
    pool = [ct_head(rng, spacing_mm=spacing) for _ in range(config.pool)]
    window = manifest.preprocessing.window

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = [], []
        for _ in range(config.batch):
            p = pool[int(rng.integers(len(pool)))]
            corner = _crop_corner(rng, p, config.crop)
            region = tuple(slice(c, c + n) for c, n in zip(corner, config.crop, strict=True))
            xs.append(window.apply(p.hu[region]))
            ys.append(p.bleed_mask[region].astype(np.float32))
        return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])

    return fit(spec, batch, config, out, log)


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place, then calibrate them (`dicomnode models train ct-hemorrhage`)."""
    from models.phantom_evaluation import CALIBRATION_SEED, calibrate_builtin, ct_head_cases

    record = train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))
    record["calibration"] = calibrate_builtin("ct-hemorrhage", ct_head_cases(CALIBRATION_SEED, 60))
    return record


def _crop_corner(rng: np.random.Generator, p: HeadPhantom, crop: tuple[int, int, int]) -> tuple[int, ...]:
    """A third of crops centre on a bleed, a third on a hard negative, a third anywhere."""
    limits = [n - c for n, c in zip(p.hu.shape, crop, strict=True)]
    draw = rng.random()
    if draw < 1 / 3 and p.bleed_mask.any():
        candidates = p.bleed_mask
    elif draw < 2 / 3:
        # Blood-like density that is not blood: the blurred brain-skull interface, vessels, calcification rims.
        candidates = (p.hu > 50) & (p.hu < 120) & ~p.bleed_mask
    else:
        candidates = None
    if candidates is not None and candidates.any():
        points = np.argwhere(candidates)
        target = points[int(rng.integers(len(points)))]
        return tuple(int(np.clip(t - c // 2, 0, lim)) for t, c, lim in zip(target, crop, limits, strict=True))
    return tuple(int(rng.integers(lim + 1)) for lim in limits)


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
