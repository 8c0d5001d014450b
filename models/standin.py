"""A stand-in CT detector until the trained models land: a real torch module, no training.

It smooths the volume with a fixed 3x3x3 mean filter and maps 60-100 HU (the
density of fresh blood) to a probability with fixed sigmoids. It exists to run
the pipeline end to end through the real model interface; it is not a
clinical detector.
"""

from __future__ import annotations

import numpy as np
import torch

from models.findings import Finding
from models.image import ImageVolume
from models.regions import connected_regions, region_finding

NAME = "standin-hyperdense"
VERSION = "0.1.0"
LABEL = "hyperdense region"
MIN_VOXELS = 8


class HyperdenseNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.smooth = torch.nn.Conv3d(1, 1, kernel_size=3, padding=1, bias=False, padding_mode="replicate")
        with torch.no_grad():
            self.smooth.weight.fill_(1.0 / 27.0)

    def forward(self, hu: torch.Tensor) -> torch.Tensor:
        x = self.smooth(hu)
        return torch.sigmoid((x - 60.0) / 4.0) * torch.sigmoid((100.0 - x) / 4.0)


class StandInModel:
    name = NAME
    version = VERSION

    def __init__(self, device: str) -> None:
        self.device = torch.device(device)
        self.net = HyperdenseNet().to(self.device).eval()

    def predict(self, volume: ImageVolume) -> list[Finding]:
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(volume.array, dtype=np.float32)).to(self.device)
            prob = self.net(x[None, None])[0, 0].cpu().numpy()
        findings = [
            region_finding(LABEL, prob, region, inside, volume.voxel_ml)
            for region, inside in connected_regions(prob > 0.5)
            if inside.sum() >= MIN_VOXELS
        ]
        return sorted(findings, key=lambda f: -f.score)


def load(device: str) -> StandInModel:
    return StandInModel(device)
