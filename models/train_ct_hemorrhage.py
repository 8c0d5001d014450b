"""Train ct-hemorrhage on procedural CT head phantoms, seeded, on the CPU.

    python -m models.train_ct_hemorrhage [--seed 0] [--steps 1000] [--out models/weights/ct-hemorrhage.pt]

A pool of phantoms is generated once; each step trains on random crops: a third
centred on a bleed, a third on a hard negative (blood-like density that is not
blood, mostly the blurred brain-skull interface), a third anywhere. Loss: binary cross-entropy plus soft Dice. The
configuration is written next to the weights, so they can be reproduced.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from models.ct_hemorrhage import BASE_CHANNELS, SPACING_MM, WEIGHTS, window
from models.phantoms.ct_head import HeadPhantom, ct_head
from models.unet3d import UNet3D


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1000
    batch: int = 4
    crop: tuple[int, int, int] = (16, 64, 64)
    pool: int = 120
    lr: float = 2e-3
    threads: int = 0  # 0: all cores


def train(config: TrainConfig, out: Path = WEIGHTS, log=print) -> dict:  # noqa: ANN001
    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    pool = [ct_head(rng, spacing_mm=SPACING_MM) for _ in range(config.pool)]
    net = UNet3D(BASE_CHANNELS)
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    start = time.perf_counter()
    for step in range(1, config.steps + 1):
        x, y = _batch(rng, pool, config)
        logits = net(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + _soft_dice_loss(logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == config.steps:
            log(f"step {step}/{config.steps} loss {loss.item():.4f} {time.perf_counter() - start:.0f}s")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out)
    record = {"config": asdict(config), "seconds": round(time.perf_counter() - start, 1), "final_loss": loss.item()}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def train_seeded(seed: int, steps: int | None = None) -> dict:
    """Train the built-in weights in place (`dicomnode models train ct-hemorrhage`)."""
    return train(TrainConfig(seed=seed, steps=steps or TrainConfig.steps))


def _batch(rng: np.random.Generator, pool: list[HeadPhantom], config: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for _ in range(config.batch):
        p = pool[int(rng.integers(len(pool)))]
        corner = _crop_corner(rng, p, config.crop)
        region = tuple(slice(c, c + n) for c, n in zip(corner, config.crop, strict=True))
        xs.append(window(p.hu[region]))
        ys.append(p.bleed_mask[region].astype(np.float32))
    return torch.from_numpy(np.stack(xs)[:, None]), torch.from_numpy(np.stack(ys)[:, None])


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


def _soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + 1) / (prob.sum() + target.sum() + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=TrainConfig.seed)
    parser.add_argument("--steps", type=int, default=TrainConfig.steps)
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    args = parser.parse_args()
    print(json.dumps(train(TrainConfig(seed=args.seed, steps=args.steps), args.out)))


if __name__ == "__main__":
    main()
