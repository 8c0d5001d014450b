"""Train cxr-pneumothorax on procedural chest radiograph phantoms, seeded, on the CPU.

    python -m models.train_cxr_pneumothorax [--seed 0] [--steps 700] [--out models/builtin/cxr-pneumothorax/weights.pt]

Whole 256x256 images, half with a pneumothorax; the target is the air rim's
mask, so the network learns where, and the detector reports its bounding box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from models.detector import prepare
from models.phantoms.chest_xr import chest_radiograph
from models.registry import builtin_spec
from models.training import command_line, fit


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 700
    batch: int = 8
    pool: int = 400
    lr: float = 3e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("cxr-pneumothorax")
    manifest = spec.manifest
    rng = np.random.default_rng(config.seed)
    pool = [chest_radiograph(rng) for _ in range(config.pool)]

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        picks = [pool[int(i)] for i in rng.integers(len(pool), size=config.batch)]
        x = torch.from_numpy(np.stack([p.image for p in picks])[:, None])
        x, _ = prepare(manifest, x, picks[0].spacing_mm)
        flips = rng.random(config.batch) < 0.5  # mirror: pneumothorax on either side
        y = torch.from_numpy(np.stack([p.pneumothorax_mask for p in picks])[:, None].astype(np.float32))
        x[flips], y[flips] = x[flips].flip(-1), y[flips].flip(-1)
        return x, y

    return fit(spec, batch, config, out, log)


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place, then calibrate them (`dicomnode models train cxr-pneumothorax`)."""
    from models.phantom_evaluation import CALIBRATION_SEED, calibrate_builtin, chest_cases

    record = train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))
    record["calibration"] = calibrate_builtin("cxr-pneumothorax", chest_cases(CALIBRATION_SEED, 200))
    return record


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
