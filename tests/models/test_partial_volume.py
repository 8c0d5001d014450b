"""Measuring a grown region by partial volume (models/partial_volume.py): a small or ragged bleed is measured at
its own volume, not at the larger outline its blurred edge crosses a threshold at; the mask is the measurement."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.detector import _finding, _measured, _refined
from models.growth import grow
from models.manifest import ManifestError, load_manifest
from models.partial_volume import measured
from models.regions import cropped
from models.registry import builtin_spec
from tests.support.heads import SPACING as HEAD_SPACING
from tests.support.heads import as_full, subdural_head
from tests.support.volumes import as_volume

SPACING = (2.5, 0.6, 0.6)
OUTPUT = builtin_spec("ct-hemorrhage").manifest.outputs[0]
GROWTH = OUTPUT.growth.model_copy(update={"partial_volume_mm": 3.0})


def ragged_bleed(rng: np.random.Generator, radius_mm: float, blur_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """A 70 HU bleed with a ragged margin (a sphere kept where smooth noise allows, as the phantoms' are) in a 33 HU
    brain, blurred and noisy like a scan. Returns the HU and the bleed (voxel centres inside it)."""
    shape = (16, 120, 120)
    z, y, x = np.meshgrid(
        *[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij"
    )
    rough = ndimage.gaussian_filter(rng.normal(size=shape), sigma=[max(3.0 / s, 0.5) for s in SPACING])
    bleed = (np.sqrt(z**2 + y**2 + x**2) <= radius_mm) & (rough > -0.5 * rough.std())
    hu = np.where(bleed, 70.0, 33.0).astype(np.float32)
    hu = ndimage.gaussian_filter(hu, sigma=[max(blur_mm, s * 0.5) / s for s in SPACING])
    return hu + rng.normal(0.0, 5.0, shape).astype(np.float32), bleed


def grown(hu: np.ndarray, bleed: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """What the detector measured before: the network's region grown into the image. The network's map, upsampled
    from its 1.5 mm grid, covers the bleed and its blurred edge (here: the bleed 1.5 mm wider), kept to the
    output's value range (from 40 HU, a fifth of the way from this brain to this bleed)."""
    r = [max(1, round(1.5 / s)) for s in SPACING]
    blob = ndimage.binary_dilation(bleed, structure=np.ones((1, 2 * r[1] + 1, 2 * r[2] + 1)))
    region = _refined(OUTPUT, *cropped((0, 0, 0), blob), hu)
    return grow(hu, SPACING, *region, GROWTH, OUTPUT.value_range)


@pytest.mark.parametrize(("radius_mm", "blur_mm", "seed"), [(9.0, 1.2, 1), (10.0, 1.0, 2), (14.0, 1.4, 3)])
def test_a_ragged_bleed_is_measured_at_its_own_volume(radius_mm: float, blur_mm: float, seed: int) -> None:
    """Bleeds of 1.6-6 mL whose grown masks hold 1.6-1.8x their volume (here 1.07-1.17x)."""
    hu, bleed = ragged_bleed(np.random.default_rng(seed), radius_mm, blur_mm)
    region = grown(hu, bleed)
    assert region[1].sum() > 1.4 * bleed.sum()

    bbox, mask = measured(hu, SPACING, *region, GROWTH)

    assert 0.85 <= mask.sum() / bleed.sum() <= 1.25, mask.sum() / bleed.sum()
    recut = as_full(bbox, mask, hu.shape)
    assert (recut & bleed).sum() >= 0.8 * bleed.sum()  # the same place, not just the same count


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_small_bleed_is_measured_closer_than_its_threshold_outline(seed: int) -> None:
    """At 0.3-0.6 mL the blur leaves no voxel at the bleed's own density, so its density reads low and the sum
    still counts too much (1.25-1.5x), but less than the outline did (1.7-1.9x)."""
    hu, bleed = ragged_bleed(np.random.default_rng(seed), 6.0, 1.0)
    region = grown(hu, bleed)

    mask = measured(hu, SPACING, *region, GROWTH)[1]

    assert bleed.sum() <= mask.sum() < region[1].sum() - 0.2 * bleed.sum()


def test_blood_against_the_skull_is_counted_whole_and_not_inflated_by_the_bone() -> None:
    """A crescent against the inner table: its blur spreads into the skull's band, which is never counted, so
    its voxels within reach of the band count whole (their fractions alone measured 0.79x here), and bone never
    makes a voxel count more than one, nor voxels off the mask on the band count at all."""
    hu, crescent = subdural_head(np.random.default_rng(1))
    region = cropped((0, 0, 0), crescent)

    mask = as_full(*measured(hu, HEAD_SPACING, *region, GROWTH), hu.shape)

    assert 0.9 * crescent.sum() <= mask.sum() <= 1.15 * crescent.sum(), mask.sum() / crescent.sum()
    assert not mask[..., : hu.shape[2] // 2].any()


def test_the_volume_reported_is_the_masks_so_sr_and_seg_agree() -> None:
    hu, bleed = ragged_bleed(np.random.default_rng(5), 8.0, 1.2)
    volume = as_volume(hu, SPACING)
    output = OUTPUT.model_copy(update={"growth": GROWTH})

    bbox, mask = _measured(output, grown(hu, bleed), volume)
    finding = _finding(output, 0.9, bbox, mask, volume, keep_mask=True)

    assert finding is not None and finding.mask is not None
    assert finding.measurement("volume") == round(finding.mask.sum() * volume.voxel_ml, 3)


def test_a_reportable_region_stays_reported_when_its_measure_falls_under_the_minimum() -> None:
    """The size floor judged the grown region; the partial-volume count of a faint one can fall under it, and a
    region the study was flagged for must keep a finding (score and findings agree)."""
    hu, bleed = ragged_bleed(np.random.default_rng(6), 6.0, 1.4)
    volume = as_volume(hu, SPACING)
    region = grown(hu, bleed)
    recut = measured(hu, SPACING, *region, GROWTH)
    between = (recut[1].sum() + region[1].sum()) / 2 * volume.voxel_ml
    assert recut[1].sum() < region[1].sum()
    output = OUTPUT.model_copy(update={"growth": GROWTH, "min_volume_ml": between})

    kept = _measured(output, region, volume)

    assert kept[0] == region[0] and np.array_equal(kept[1], region[1])
    assert _finding(output, 0.9, *kept, volume, keep_mask=True) is not None


def test_without_partial_volume_the_grown_mask_is_counted_as_it_is() -> None:
    hu, bleed = ragged_bleed(np.random.default_rng(7), 8.0, 1.2)
    volume = as_volume(hu, SPACING)
    region = grown(hu, bleed)
    output = OUTPUT.model_copy(update={"growth": GROWTH.model_copy(update={"partial_volume_mm": 0.0})})

    assert _measured(output, region, volume) is region


def test_a_negative_or_huge_reach_is_refused_by_the_manifest(tmp_path) -> None:  # noqa: ANN001
    text = builtin_spec("ct-hemorrhage").manifest_path.read_text()  # type: ignore[union-attr]
    for reach in ("-1.0", "50.0"):
        path = tmp_path / "manifest.toml"
        path.write_text(text.replace("open_mm = 0.0", f"open_mm = 0.0, partial_volume_mm = {reach}"))
        with pytest.raises(ManifestError, match="partial_volume_mm"):
            load_manifest(path)
