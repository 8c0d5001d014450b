"""A small U-Net in 2D or 3D: one to three pooling levels (`levels`), channels doubling at each.

The 3D variant keeps slices at the first pooling (thick-slice CT); the 2D one
pools both axes at each level. Attribute names are stable (enc1, pool1, up1,
dec1, ... bottom, head): committed weights load by them, and a two-level
network has the names it had before `levels` existed.
"""

from __future__ import annotations

import math

import torch
from torch import nn

_LAYERS = {
    2: (nn.Conv2d, nn.InstanceNorm2d, nn.MaxPool2d, nn.ConvTranspose2d),
    3: (nn.Conv3d, nn.InstanceNorm3d, nn.MaxPool3d, nn.ConvTranspose3d),
}
POOLS = {2: ((2, 2), (2, 2), (2, 2)), 3: ((1, 2, 2), (2, 2, 2), (2, 2, 2))}


def _block(dims: int, cin: int, cout: int) -> nn.Sequential:
    conv, norm, _, _ = _LAYERS[dims]
    return nn.Sequential(
        conv(cin, cout, 3, padding=1, bias=False),
        norm(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
        conv(cout, cout, 3, padding=1, bias=False),
        norm(cout, affine=True),
        nn.LeakyReLU(0.1, inplace=True),
    )


class UNet(nn.Module):
    """Input (N, 1, *spatial), each spatial size divisible by `multiples(dims, levels)`; output logits of that size."""

    def __init__(self, dims: int = 3, base: int = 8, levels: int = 2) -> None:
        super().__init__()
        if not 1 <= levels <= len(POOLS[dims]):
            raise ValueError(f"levels must be 1-{len(POOLS[dims])}, not {levels}")
        _, _, pool, up = _LAYERS[dims]
        self.levels = levels
        channels = [base * 2**k for k in range(levels + 1)]
        windows = POOLS[dims][:levels]
        # Registered in the order the seeded initialisation has always drawn them: encoders, bottom, decoders upwards.
        for k in range(1, levels + 1):
            setattr(self, f"enc{k}", _block(dims, channels[k - 2] if k > 1 else 1, channels[k - 1]))
        self.bottom = _block(dims, channels[-2], channels[-1])
        for k, window in enumerate(windows, start=1):
            setattr(self, f"pool{k}", pool(window))
        for k in range(levels, 0, -1):
            window = windows[k - 1]
            setattr(self, f"up{k}", up(channels[k], channels[k - 1], window, stride=window))
            setattr(self, f"dec{k}", _block(dims, channels[k - 1] * 2, channels[k - 1]))
        self.head = (nn.Conv2d if dims == 2 else nn.Conv3d)(base, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for k in range(1, self.levels + 1):
            x = getattr(self, f"enc{k}")(x)
            skips.append(x)
            x = getattr(self, f"pool{k}")(x)
        x = self.bottom(x)
        for k in range(self.levels, 0, -1):
            x = getattr(self, f"dec{k}")(torch.cat([getattr(self, f"up{k}")(x), skips[k - 1]], dim=1))
        return self.head(x)


def multiples(dims: int, levels: int = 2) -> tuple[int, ...]:
    """What each spatial size must divide by: the product of the poolings along it."""
    return tuple(math.prod(sizes) for sizes in zip(*POOLS[dims][:levels], strict=True))
