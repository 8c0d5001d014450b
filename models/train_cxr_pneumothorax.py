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

A second phase (TrainConfig.hard_negatives; None skips it) tunes the network
on new chest films and on abdomen films (models/phantoms/abdomen_xr.py) whose
target is empty. Without it the network reads the dark bowel and soft tissue
of most abdomen films as pneumothorax air. On the two-level network of 0.3.0 it
cost specificity on chest films with soft tissue to the edge; on the
three-level network (0.5.0) it costs nothing measurable (README, "Models").
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
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
from models.phantoms.abdomen_xr import abdomen_radiograph
from models.phantoms.chest_xr import chest_radiograph
from models.registry import builtin_spec
from models.training import command_line, fit

Film = tuple[torch.Tensor, torch.Tensor]  # (the prepared film, its target padded alike)


@dataclass(frozen=True)
class HardNegatives:
    """The second phase: `steps` more steps from the first phase's weights, at a lower rate, on a pool of its own."""

    seed: int = 9_100_000  # its own pool: neither the first phase's seed nor an evaluation seed
    steps: int = 600
    batch: int = 8
    chest_films: int = 1000  # every other film of the pool (chest and abdomen alike) drawn at a detector's size
    abdomen_films: int = 300
    lr: float = 3e-4
    threads: int = 0
    channels_last: bool = False  # models/training.py (see TrainConfig)


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
    # models/training.py: 0.35 s a step against 0.46 s, 19 minutes in all against 25. Off: the committed 0.5.0
    # weights were trained without it, and the weights trained with it missed a film of the suite (README).
    channels_last: bool = False
    hard_negatives: HardNegatives | None = HardNegatives()  # None: the first phase alone


def train(config: TrainConfig, out: Path | None = None, log=print) -> dict:  # noqa: ANN001
    spec = builtin_spec("cxr-pneumothorax")
    out = out or spec.weights_path
    native = [k < config.native_share * config.pool for k in range(config.pool)]
    pool = _films(spec.manifest, config, native, [False] * config.pool, config.seed)
    log(f"{config.pool} films prepared")
    record = fit(spec, _batches(pool, config.seed, config.batch), config, out, log)
    if config.hard_negatives is not None:
        record["hard_negatives"] = tune_on_hard_negatives(config, out, log)
        out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def tune_on_hard_negatives(config: TrainConfig, weights: Path, log=print) -> dict:  # noqa: ANN001
    """The second phase, from `weights` and into them (the first phase's record is the caller's to keep)."""
    spec = builtin_spec("cxr-pneumothorax")
    phase = config.hard_negatives
    if phase is None:
        raise ValueError("this configuration has no hard-negative phase")
    count = phase.chest_films + phase.abdomen_films
    abdomen = [k >= phase.chest_films for k in range(count)]
    pool = _films(spec.manifest, config, [k % 2 == 0 for k in range(count)], abdomen, phase.seed)
    log(f"{phase.chest_films} chest and {phase.abdomen_films} abdomen films prepared")
    return fit(spec, _batches(pool, phase.seed, phase.batch), phase, weights, log, start=weights)


def _films(
    manifest: Manifest, config: TrainConfig, native: Sequence[bool], abdomen: Sequence[bool], seed: int
) -> list[Film]:
    """Films drawn on every core, each from its own child of `seed`."""
    children = np.random.SeedSequence(seed).spawn(len(native))
    draw = partial(_prepared_film, manifest, config.native_sizes)
    with ProcessPoolExecutor(config.threads or None, mp_context=get_context("spawn")) as workers:
        return list(workers.map(draw, native, abdomen, children, chunksize=16))


def _batches(pool: list[Film], seed: int, size: int) -> Callable[[], Film]:
    rng = np.random.default_rng(seed)

    def batch() -> Film:
        picks = rng.integers(len(pool), size=size)
        x = torch.stack([pool[int(i)][0] for i in picks])
        y = torch.stack([pool[int(i)][1] for i in picks])
        flips = torch.from_numpy(rng.random(size) < 0.5)  # mirror: pneumothorax on either side
        x[flips], y[flips] = x[flips].flip(-1), y[flips].flip(-1)
        return x, y

    return batch


def _prepared_film(
    manifest: Manifest, native_sizes: tuple[int, int], native: bool, abdomen: bool, seed: np.random.SeedSequence
) -> Film:
    """One film as the network sees it, and its target padded alike (zeros); an abdomen film's target is empty."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    size = int(rng.integers(*native_sizes, endpoint=True)) if native else manifest.preprocessing.longest_side
    if abdomen:
        image, spacing = abdomen_radiograph(rng, size=size)
        truth = np.zeros(image.shape, bool)
    else:
        p = chest_radiograph(rng, size=size)
        image, spacing, truth = p.image, p.spacing_mm, p.pneumothorax_mask
    x, fitted = prepare(manifest, torch.from_numpy(image)[None, None], spacing)
    y = torch.from_numpy(truth.astype(np.float32))[None, None]
    if y.shape[-2:] != fitted:
        y = (F.interpolate(y, size=fitted, mode="area") >= 0.5).float()
    return x[0], F.pad(y, [0, x.shape[-1] - fitted[1], 0, x.shape[-2] - fitted[0]])[0]


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place, then calibrate them (`dicomnode models train cxr-pneumothorax`)."""
    from models.phantom_evaluation import CALIBRATION_SEED, calibrate_builtin, chest_cases

    record = train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))
    record["calibration"] = calibrate_builtin("cxr-pneumothorax", chest_cases(CALIBRATION_SEED, 200, sizes=(512, 1024)))
    return record


if __name__ == "__main__":
    command_line(train, TrainConfig, __doc__)
