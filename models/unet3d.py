"""A small 3D U-Net: two poolings in-plane, one across slices (thick-slice CT), a few thousand parameters per level."""

from __future__ import annotations

import torch
from torch import nn


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, padding=1, bias=False),
        nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        nn.InstanceNorm3d(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNet3D(nn.Module):
    """Input (N, 1, D, H, W) with D divisible by 2 and H, W by 4; output logits of the same size."""

    POOLS = ((1, 2, 2), (2, 2, 2))  # first level keeps slices: they are thick

    def __init__(self, base: int = 8) -> None:
        super().__init__()
        c1, c2, c3 = base, base * 2, base * 4
        self.enc1 = _block(1, c1)
        self.enc2 = _block(c1, c2)
        self.bottom = _block(c2, c3)
        self.pool1 = nn.MaxPool3d(self.POOLS[0])
        self.pool2 = nn.MaxPool3d(self.POOLS[1])
        self.up2 = nn.ConvTranspose3d(c3, c2, self.POOLS[1], stride=self.POOLS[1])
        self.dec2 = _block(c2 * 2, c2)
        self.up1 = nn.ConvTranspose3d(c2, c1, self.POOLS[0], stride=self.POOLS[0])
        self.dec1 = _block(c1 * 2, c1)
        self.head = nn.Conv3d(c1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottom(self.pool2(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def pad_to_multiple(x: torch.Tensor, multiples: tuple[int, int, int] = (2, 4, 4)) -> tuple[torch.Tensor, tuple]:
    """Pad the last three dimensions (with the minimum) so the U-Net's poolings divide them."""
    pads = [(-n) % m for n, m in zip(x.shape[-3:], multiples, strict=True)]
    padded = nn.functional.pad(x, (0, pads[2], 0, pads[1], 0, pads[0]), value=float(x.min()))
    return padded, tuple(x.shape[-3:])
