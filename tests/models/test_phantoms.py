"""CT head phantoms: units, anatomy, planted bleeds as ground truth, look-alikes outside it, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from models.phantoms.ct_head import BLEED, ct_head


def phantom(seed: int, **kwargs):  # noqa: ANN003, ANN201
    return ct_head(np.random.default_rng(seed), **kwargs)


def test_same_seed_same_phantom_and_different_seeds_differ() -> None:
    a, b, c = phantom(3), phantom(3), phantom(4)
    np.testing.assert_array_equal(a.hu, b.hu)
    np.testing.assert_array_equal(a.bleed_mask, b.bleed_mask)
    assert not np.array_equal(a.hu, c.hu)


def test_anatomy_is_in_hounsfield_units() -> None:
    p = phantom(1, bleeds=0, lookalikes=False)
    assert p.hu.shape == (32, 128, 128) and p.hu.dtype == np.float32 and p.spacing_mm == (5.0, 1.5, 1.5)
    corner = p.hu[:, :8, :8]
    assert abs(float(np.median(corner)) + 1000) < 30, "air outside the head"
    centre_row = p.hu[16, 64, :]
    assert centre_row.max() > 500, "a line through the head crosses the skull"
    brain = p.hu[16, 40:90, 40:90]
    assert 0 < float(np.median(brain)) < 45, "brain parenchyma and CSF"
    assert not p.bleed_mask.any() and p.lesions == []


@pytest.mark.parametrize("seed", range(6))
def test_planted_bleeds_are_the_ground_truth(seed: int) -> None:
    p = phantom(seed, bleeds=1)
    [lesion] = p.lesions
    assert p.bleed_mask.any()
    assert BLEED[0] <= lesion.mean_hu <= BLEED[1]
    assert lesion.volume_ml == pytest.approx(p.bleed_mask.sum() * p.voxel_ml)
    inside = p.hu[p.bleed_mask]
    assert 35 < float(np.median(inside)) < 100, "blurred and noised, the bleed stays hyperdense"
    idx = np.argwhere(p.bleed_mask)
    assert (idx.min(axis=0) <= lesion.centre).all() and (lesion.centre <= idx.max(axis=0)).all()


def test_lookalikes_are_not_in_the_mask() -> None:
    found = set()
    for seed in range(12):
        p = phantom(seed, bleeds=0)
        found.update(p.lookalikes)
        assert not p.bleed_mask.any()
        if "calcification" in p.lookalikes:
            assert p.hu.max() > 120, "calcifications are much denser than blood"
    assert found == {"calcification", "vessel"}


def test_random_bleed_count_includes_negatives() -> None:
    counts = [len(phantom(seed).lesions) for seed in range(20)]
    assert 0 in counts and max(counts) >= 1
