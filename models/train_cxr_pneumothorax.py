"""Train cxr-pneumothorax on procedural chest radiographs of varied acquisition, seeded, on the CPU.

    python -m models.train_cxr_pneumothorax [--seed 0] [--steps 2000] [--out models/builtin/cxr-pneumothorax/weights.pt]

A pool of films (models/phantoms/chest_xr.py draws each one's field of view,
aspect, position, collimation, devices and grey-level curve) is prepared once
exactly as the detector prepares a film: fitted into 256 x 256, aspect kept,
normalised on the central field, padded with its edge pixels. Half the pool is
drawn at a detector's size (768-1536 px, as films arrive) and shrunk, so the
network learns the blur and noise a real film has after shrinking; the rest
is drawn at 256 px, which is four times cheaper. Films are drawn on every
core, each from its own child of the seed. Half have a pneumothorax; the
target is the air rim's mask, so the network learns where, and the detector
reports its bounding box. Each step mirrors half the batch.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from models.detector import prepare
from models.manifest import Manifest
from models.phantoms.chest_xr import chest_radiograph
from models.registry import builtin_spec
from models.training import command_line, fit


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 2000
    batch: int = 8
    pool: int = 2000
    native_share: float = 0.5  # drawn at a detector's size and shrunk as the detector shrinks it
    native_sizes: tuple[int, int] = (768, 1536)
    lr: float = 3e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("cxr-pneumothorax")
    rng = np.random.default_rng(config.seed)
    children = np.random.SeedSequence(config.seed).spawn(config.pool)
    draw = partial(_prepared_film, config, spec.manifest)
    with ProcessPoolExecutor(config.threads or None, mp_context=get_context("spawn")) as pool:
        images, masks = zip(*pool.map(draw, range(config.pool), children, chunksize=16), strict=True)
    log(f"{config.pool} films prepared")

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        picks = rng.integers(len(images), size=config.batch)
        x = torch.stack([images[int(i)] for i in picks])
        y = torch.stack([masks[int(i)] for i in picks])
        flips = torch.from_numpy(rng.random(config.batch) < 0.5)  # mirror: pneumothorax on either side
        x[flips], y[flips] = x[flips].flip(-1), y[flips].flip(-1)
        return x, y

    return fit(spec, batch, config, out, log)


def _prepared_film(
    config: TrainConfig, manifest: Manifest, index: int, seed: np.random.SeedSequence
) -> tuple[torch.Tensor, torch.Tensor]:
    """One film of the pool as the network sees it, and its target padded alike (zeros)."""
    torch.set_num_threads(1)
    side = manifest.preprocessing.longest_side
    rng = np.random.default_rng(seed)
    native = index < config.native_share * config.pool
    p = chest_radiograph(rng, size=int(rng.integers(*config.native_sizes, endpoint=True)) if native else side)
    x, size = prepare(manifest, torch.from_numpy(p.image)[None, None], p.spacing_mm)
    y = torch.from_numpy(p.pneumothorax_mask.astype(np.float32))[None, None]
    if y.shape[-2:] != size:
        y = (F.interpolate(y, size=size, mode="area") >= 0.5).float()
    return x[0], F.pad(y, [0, x.shape[-1] - size[1], 0, x.shape[-2] - size[0]])[0]


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place, then calibrate them (`dicomnode models train cxr-pneumothorax`)."""
    from models.phantom_evaluation import CALIBRATION_SEED, calibrate_builtin, chest_cases

    record = train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))
    record["calibration"] = calibrate_builtin("cxr-pneumothorax", chest_cases(CALIBRATION_SEED, 200, sizes=(512, 1024)))
    return record


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
