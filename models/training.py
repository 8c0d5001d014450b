"""The training loop the built-in segmenters share: AdamW, one-cycle schedule, BCE + soft Dice, seeded.

Each model supplies its network and a batch function; the weights and the
configuration that produced them are written side by side so they can be reproduced.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from models.registry import ModelSpec

Batch = Callable[[], tuple[torch.Tensor, torch.Tensor]]


def fit(  # noqa: ANN001 - log
    spec: ModelSpec, batch: Batch, config: Any, out: Path | None = None, log=print, start: Path | None = None
) -> dict:
    """Build the network the model's manifest names (seeded; from the weights at `start` if given), train it, and
    save its state dict to `out` (default: the model's own weights) with `config` beside it (.json).

    `config` is a dataclass with at least `seed`, `steps`, `lr` and `threads` (0: all cores); with `channels_last`
    true the network and its batches are laid out channels last, where oneDNN's CPU convolutions run faster (figures
    at the cxr TrainConfig), which changes the weights' last bits, so it is recorded.
    """
    from models.detector import build_network

    torch.manual_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    net = build_network(spec.manifest, weights=start)
    layout = _layout(net, getattr(config, "channels_last", False))
    net = net.to(memory_format=layout)
    out = out or spec.weights_path
    optimiser = torch.optim.AdamW(net.parameters(), lr=config.lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=config.lr, total_steps=config.steps)
    start = time.perf_counter()
    net.train()
    for step in range(1, config.steps + 1):
        x, y = batch()
        logits = net(x.contiguous(memory_format=layout))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y) + soft_dice_loss(logits, y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 100 == 0 or step == config.steps:
            log(f"step {step}/{config.steps} loss {loss.item():.4f} {time.perf_counter() - start:.0f}s")
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.to(memory_format=torch.contiguous_format).state_dict(), out)
    record = {"config": asdict(config), "seconds": round(time.perf_counter() - start, 1), "final_loss": loss.item()}
    out.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _layout(net: torch.nn.Module, channels_last: bool) -> torch.memory_format:
    if not channels_last:
        return torch.contiguous_format
    three_d = any(isinstance(m, torch.nn.Conv3d) for m in net.modules())
    return torch.channels_last_3d if three_d else torch.channels_last


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    return 1 - (2 * intersection + 1) / (prob.sum() + target.sum() + 1)


def command_line(train: Callable[..., dict], config_type: type, doc: str | None) -> None:
    """`python -m models.train_<name> [--seed S] [--steps N] [--out PATH]` for a trainer module."""
    import argparse

    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=config_type.seed)
    parser.add_argument("--steps", type=int, default=config_type.steps)
    parser.add_argument("--out", type=Path, default=None, help="weights file; default the built-in model's")
    args = parser.parse_args()
    print(json.dumps(train(config_type(seed=args.seed, steps=args.steps), args.out)))
