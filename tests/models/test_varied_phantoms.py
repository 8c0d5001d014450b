"""The varied generators the detectors train and are evaluated on: reproducible, in physical units at any
geometry, every bleed kind plantable, the truth exactly what was planted, films at any size."""

from __future__ import annotations

import numpy as np
import pytest

from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head_varied import BLEED, KINDS, ct_geometry, ct_head


def test_a_seed_gives_the_same_head_and_geometries_span_scanners() -> None:
    a, b = (ct_head(np.random.default_rng(5), shape=(20, 96, 96), spacing_mm=(5.0, 2.0, 2.0)) for _ in range(2))
    np.testing.assert_array_equal(a.hu, b.hu)
    rng = np.random.default_rng(1)
    geometries = [ct_geometry(rng, max_voxels=8e6) for _ in range(40)]
    assert all(np.prod(shape) <= 8e6 or spacing[0] == 5.0 for shape, spacing in geometries)
    assert {spacing[0] for _, spacing in geometries} >= {1.25, 2.5, 5.0}
    assert all(179 <= shape[1] * spacing[1] <= 321 for shape, spacing in geometries)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_bleed_is_planted_as_the_truth(kind: str) -> None:
    p = ct_head(np.random.default_rng(3), shape=(32, 128, 128), spacing_mm=(5.0, 1.6, 1.6), bleeds=1, kinds=(kind,))
    [lesion] = p.lesions
    assert lesion.kind in (kind, "intraparenchymal")  # a draw off the grid falls back to a small blob
    assert BLEED[0] <= lesion.mean_hu <= BLEED[1] and p.bleed_mask.any()
    assert lesion.volume_ml == pytest.approx(p.bleed_mask.sum() * p.voxel_ml)
    assert 30 < float(np.median(p.hu[p.bleed_mask])) < 110, "blurred and noised, the bleed stays hyperdense"
    assert p.lesion_labels is not None and np.array_equal(p.lesion_labels > 0, p.bleed_mask)


def test_each_planted_bleed_is_labelled_as_one_lesion_however_the_truth_splits_it() -> None:
    p = ct_head(np.random.default_rng(5), shape=(32, 128, 128), spacing_mm=(5.0, 1.6, 1.6), bleeds=2)
    assert p.lesion_labels is not None
    assert set(np.unique(p.lesion_labels)) - {0} == set(range(1, len(p.lesions) + 1))
    for number, lesion in enumerate(p.lesions, start=1):
        assert (p.lesion_labels == number).sum() * p.voxel_ml == pytest.approx(lesion.volume_ml, rel=0.2)


def test_thin_slices_are_noisier_than_thick_ones() -> None:
    def brain_noise(spacing: tuple[float, float, float], shape: tuple[int, int, int]) -> float:
        p = ct_head(np.random.default_rng(9), shape=shape, spacing_mm=spacing, bleeds=0, lookalikes=False)
        centre = p.hu[shape[0] // 2, shape[1] // 2 - 5 : shape[1] // 2 + 5, shape[2] // 2 + 20 : shape[2] // 2 + 30]
        return float(centre.std())

    assert brain_noise((1.0, 0.5, 0.5), (40, 400, 400)) > 2 * brain_noise((5.0, 1.5, 1.5), (8, 133, 133))


def test_a_film_is_the_same_acquisition_at_any_size_and_its_mask_follows() -> None:
    small = chest_radiograph(np.random.default_rng(4), size=256, pneumothorax=True)
    large = chest_radiograph(np.random.default_rng(4), size=2048, pneumothorax=True)
    assert small.acquisition == large.acquisition and small.side == large.side
    assert large.image.shape[0] / small.image.shape[0] == pytest.approx(8, rel=0.02)
    assert large.spacing_mm[0] * 8 == pytest.approx(small.spacing_mm[0], rel=0.02)
    assert large.pneumothorax_mask.shape == large.image.shape
    share = large.pneumothorax_mask.mean() / small.pneumothorax_mask.mean()
    assert 0.8 < share < 1.25
