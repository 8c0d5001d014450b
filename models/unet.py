"""A small U-Net in 2D or 3D: two pooling levels, a few thousand parameters per level.

The 3D variant keeps slices at the first pooling (thick-slice CT); the 2D one
pools both axes at each level. Attribute names are stable: committed weights
load by them.
"""

from __future__ import annotations

import torch
from torch import nn

_LAYERS = {
    2: (nn.Conv2d, nn.InstanceNorm2d, nn.MaxPool2d, nn.ConvTranspose2d),
    3: (nn.Conv3d, nn.InstanceNorm3d, nn.MaxPool3d, nn.ConvTranspose3d),
}
POOLS = {2: ((2, 2), (2, 2)), 3: ((1, 2, 2), (2, 2, 2))}


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
    """Input (N, 1, *spatial), each spatial size divisible by `multiples(dims)`; output logits of the same size."""

    def __init__(self, dims: int = 3, base: int = 8) -> None:
        super().__init__()
        _, _, pool, up = _LAYERS[dims]
        first, second = POOLS[dims]
        c1, c2, c3 = base, base * 2, base * 4
        self.enc1 = _block(dims, 1, c1)
        self.enc2 = _block(dims, c1, c2)
        self.bottom = _block(dims, c2, c3)
        self.pool1 = pool(first)
        self.pool2 = pool(second)
        self.up2 = up(c3, c2, second, stride=second)
        self.dec2 = _block(dims, c2 * 2, c2)
        self.up1 = up(c2, c1, first, stride=first)
        self.dec1 = _block(dims, c1 * 2, c1)
        self.head = (nn.Conv2d if dims == 2 else nn.Conv3d)(c1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool1(e1))
        b = self.bottom(self.pool2(e2))
        d2 = self.dec2(torch.cat([self.up2(b), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


def multiples(dims: int) -> tuple[int, ...]:
    """What each spatial size must divide by: the product of the poolings along it."""
    first, second = POOLS[dims]
    return tuple(a * b for a, b in zip(first, second, strict=True))


def pad_to_multiple(x: torch.Tensor, dims: int) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Pad the last `dims` dimensions (with the minimum) so the poolings divide them; also the unpadded size."""
    size = tuple(x.shape[-dims:])
    pads: list[int] = []
    for n, m in reversed(list(zip(size, multiples(dims), strict=True))):
        pads += [0, (-n) % m]
    return nn.functional.pad(x, pads, value=float(x.min())), size
