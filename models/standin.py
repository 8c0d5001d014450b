"""The stand-in CT network: a real torch module with fixed weights, no training.

It smooths the volume with a 3x3x3 mean filter and maps 60-100 HU (the
density of fresh blood) to a probability with fixed sigmoids. It exists to run
the pipeline end to end through the same detector as every model
(models/builtin/standin-hyperdense/manifest.toml); it is not a clinical detector.
"""

from __future__ import annotations

import torch


class HyperdenseNet(torch.nn.Module):
    """(N, 1, D, H, W) Hounsfield units to logits of "60-100 HU after smoothing"."""

    def __init__(self) -> None:
        super().__init__()
        self.smooth = torch.nn.Conv3d(1, 1, kernel_size=3, padding=1, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.smooth.weight.fill_(1.0 / 27.0)

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        x = self.smooth(hu)
        return torch.logit(torch.sigmoid((x - 60.0) / 4.0) * torch.sigmoid((100.0 - x) / 4.0), eps=1e-6)
