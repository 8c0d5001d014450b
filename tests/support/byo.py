"""A tiny bring-your-own model, exported the ways a hospital's AI team would: torch.export and TorchScript."""

from __future__ import annotations

from pathlib import Path

import torch

MANIFEST = """
name = "{name}"
version = "1.0.0"
family = "ct"
task = "segmentation"
dims = 3
modalities = ["CT"]
weights = "{weights}"
format = "{format}"

[preprocessing]
window = {{ center = 50, width = 100 }}
{size}

[[outputs]]
label = "bright region"
code = {{ scheme = "99TEST", value = "bright", meaning = "Bright region" }}
threshold = 0.5
urgency = 0.8
min_volume_ml = 0.01
"""


class Bright(torch.nn.Module):
    """Logits of 'above 50 HU' from the 0..1 windowed input; `channels` outputs (a wrong count tests mismatch)."""

    def __init__(self, channels: int = 1) -> None:
        super().__init__()
        self.conv = torch.nn.Conv3d(1, channels, 1)
        with torch.no_grad():
            self.conv.weight.fill_(40.0)
            self.conv.bias.fill_(-20.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def export_model(folder: Path, name: str, fmt: str, channels: int = 1) -> Path:
    """Write folder/manifest.toml and the exported weights; pt2 with a static input size, TorchScript without."""
    folder.mkdir(parents=True)
    net = Bright(channels).eval()
    if fmt == "pt2":
        size = (8, 32, 32)
        program = torch.export.export(net, (torch.zeros(1, 1, *size),))
        torch.export.save(program, str(folder / "model.pt2"))
        weights, size_line = "model.pt2", f"input_size = {list(size)}"
    else:
        torch.jit.save(torch.jit.script(net), str(folder / "model.ts"))
        weights, size_line = "model.ts", ""
    text = MANIFEST.format(name=name, weights=weights, format=fmt, size=size_line)
    (folder / "manifest.toml").write_text(text)
    return folder
