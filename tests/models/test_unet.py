"""The built-in U-Net: names the committed weights load by, depth, and the sizes it needs."""

from __future__ import annotations

import pytest
import torch

from models.registry import builtin_specs
from models.unet import UNet, multiples

UNETS = [s for s in builtin_specs() if s.manifest is not None and s.manifest.network == "models.unet:UNet"]


def test_both_built_in_detectors_are_u_nets() -> None:
    assert {s.name for s in UNETS} == {"ct-hemorrhage", "cxr-pneumothorax"}


@pytest.mark.parametrize("spec", UNETS, ids=lambda s: s.name)
def test_committed_weights_load_by_name_into_the_network_their_manifest_names(spec) -> None:  # noqa: ANN001
    net = UNet(**spec.manifest.network_args)
    state = torch.load(spec.weights_path, map_location="cpu", weights_only=True)
    net.load_state_dict(state)  # strict: a renamed, missing or extra layer fails here
    dims = spec.manifest.network_args["dims"]
    size = spec.manifest.preprocessing.pad_multiple or (spec.manifest.preprocessing.longest_side,) * dims
    needed = multiples(dims, net.levels)
    assert all(s % m == 0 for s, m in zip(size, needed, strict=True)), (size, needed)


@pytest.mark.parametrize(("dims", "shape"), [(2, (2, 1, 48, 40)), (3, (1, 1, 8, 24, 16))])
def test_three_levels_keep_the_size_and_see_further(dims: int, shape: tuple[int, ...]) -> None:
    two, three = UNet(dims, 4, levels=2), UNet(dims, 4, levels=3)
    assert multiples(dims, 3) == tuple(2 * m for m in multiples(dims, 2))
    assert all(s % m == 0 for s, m in zip(shape[2:], multiples(dims, 3), strict=True))
    x = torch.randn(shape)
    assert three(x).shape == two(x).shape == (shape[0], 1, *shape[2:])
    assert {"enc3.0.weight", "up3.weight", "dec3.0.weight"} <= set(three.state_dict())
    assert not any(k.startswith(("enc3", "up3", "dec3")) for k in two.state_dict())


@pytest.mark.parametrize("levels", [0, 4])
def test_a_depth_it_cannot_build_is_refused(levels: int) -> None:
    with pytest.raises(ValueError, match="levels must be 1-3"):
        UNet(2, 8, levels=levels)
