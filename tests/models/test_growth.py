"""Growing a detected region into the image (models/growth.py): the mask follows the lesion the image shows, not
the part the network saw, and does not run along the partial volume of the skull."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from models.detector import _finding, _merged
from models.growth import grow
from models.manifest import ManifestError, load_manifest
from models.phantoms.ct_head_varied import ct_head
from models.regions import cropped
from models.registry import builtin_spec
from tests.support.heads import SPACING, as_full, subdural_head
from tests.support.volumes import as_volume

GROWTH = builtin_spec("ct-hemorrhage").manifest.outputs[0].growth  # what ships
BLOOD_RANGE = (40.0, 120.0)


def seed_in(crescent: np.ndarray, part: slice) -> tuple[tuple[int, ...], np.ndarray]:
    """A piece of the crescent (the rows `part`): what a network that saw part of it would give."""
    piece = np.zeros_like(crescent)
    piece[:, part] = crescent[:, part]
    return cropped((0, 0, 0), piece)


def test_a_region_the_network_saw_in_part_grows_to_the_whole_crescent() -> None:
    hu, crescent = subdural_head(np.random.default_rng(1))
    rows = np.nonzero(crescent.any(axis=(0, 2)))[0]
    middle = rows[0] + 2 * len(rows) // 5
    bbox, seed = seed_in(crescent, slice(middle, middle + len(rows) // 5))  # the middle fifth
    assert seed.sum() < 0.25 * crescent.sum()

    grown = as_full(*grow(hu, SPACING, bbox, seed, GROWTH, BLOOD_RANGE), hu.shape)

    assert 0.8 <= grown.sum() / crescent.sum() <= 1.25, grown.sum() / crescent.sum()
    assert (grown & crescent).sum() >= 0.8 * crescent.sum()
    assert not grown[..., : hu.shape[2] // 2].any()  # nothing on the right side: it did not run along the skull


def faint_bleed_beside_denser_tissue(
    rng: np.random.Generator, denser_hu: float = 44.0, bleed_hu: float = 56.0, noise_hu: float = 12.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A faint bleed in a 32 HU brain whose back half is denser (beam hardening, or grey matter), noisy like thin
    pixels: half way from the brain's median to the bleed lies among the back half's values. Returns the HU, the
    bleed and the denser tissue."""
    shape = (20, 160, 160)
    z, y, x = np.meshgrid(
        *[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij"
    )
    brain = np.sqrt((z / 45) ** 2 + (y / 70) ** 2 + (x / 65) ** 2) <= 1.0
    skull = np.sqrt((z / 50) ** 2 + (y / 76) ** 2 + (x / 71) ** 2) <= 1.0
    denser = brain & (y > 15)
    bleed = brain & ((z / 10) ** 2 + ((y - 8) / 8) ** 2 + (x / 8) ** 2 <= 1.0)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[skull], hu[brain], hu[denser], hu[bleed] = 1000.0, 32.0, denser_hu, bleed_hu
    hu = ndimage.gaussian_filter(hu, sigma=(0.6, 1.0, 1.0)) + rng.normal(0.0, noise_hu, shape).astype(np.float32)
    return hu, bleed, denser & ~bleed


def grown_from_the_middle(hu: np.ndarray, bleed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bleed's middle (what the network saw) and the mask grown from it."""
    core = bleed & ndimage.binary_erosion(bleed, structure=np.ones((1, 7, 7)))
    return core, as_full(*grow(hu, SPACING, *cropped((0, 0, 0), core), GROWTH, BLOOD_RANGE), hu.shape)


def test_a_faint_bleed_does_not_grow_into_denser_tissue(monkeypatch: pytest.MonkeyPatch) -> None:
    hu, bleed, denser = faint_bleed_beside_denser_tissue(np.random.default_rng(3))
    monkeypatch.setattr("models.growth.LEAK_SIZE", 1e9)  # the floor on its own, without the leak check

    core, grown = grown_from_the_middle(hu, bleed)
    assert grown.sum() <= 1.2 * bleed.sum() and (grown & denser).sum() <= 0.05 * bleed.sum()
    assert grown.sum() > core.sum()

    monkeypatch.setattr("models.growth.TISSUE_SIGMAS", 0.0)  # the half-way rule alone runs through the back half
    assert (grown_from_the_middle(hu, bleed)[1] & denser).sum() > 10 * bleed.sum()


def test_a_growth_into_tissue_that_reads_like_a_faint_bleed_falls_back_to_the_region(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tissue above the background range (47 HU) beside a 58 HU bleed: no threshold on values tells them apart,
    but what the growth added lies barely above the edge, so the mask stays what the network saw."""
    hu, bleed, denser = faint_bleed_beside_denser_tissue(np.random.default_rng(3), 47.0, 58.0, 8.0)

    core, grown = grown_from_the_middle(hu, bleed)
    assert np.array_equal(grown, core)

    monkeypatch.setattr("models.growth.LEAK_SIZE", 1e9)
    assert (grown_from_the_middle(hu, bleed)[1] & denser).sum() > 10 * bleed.sum()


def test_the_barrier_keeps_the_mask_off_the_partial_volume_of_the_skull() -> None:
    """A phantom subdural on 5 mm slices whose growth without the barrier (a barrier no voxel reaches) runs into
    the partial volume of the skull: blood-like values that are not blood."""
    p = ct_head(
        np.random.default_rng(14), (32, 256, 256), (5.0, 0.9, 0.9), bleeds=1, kinds=("subdural",), lookalikes=False
    )
    rows = np.nonzero(p.bleed_mask.any(axis=(0, 2)))[0]
    middle = rows[0] + 2 * len(rows) // 5
    bbox, seed_mask = seed_in(p.bleed_mask, slice(middle, middle + len(rows) // 5))
    unguarded = GROWTH.model_copy(update={"barrier": 1e6})

    guarded = as_full(*grow(p.hu, p.spacing_mm, bbox, seed_mask, GROWTH, BLOOD_RANGE), p.hu.shape)
    leaky = as_full(*grow(p.hu, p.spacing_mm, bbox, seed_mask, unguarded, BLOOD_RANGE), p.hu.shape)

    truth = p.bleed_mask.sum()
    assert (leaky & ~p.bleed_mask).sum() > 0.4 * truth
    assert (guarded & ~p.bleed_mask).sum() < 0.15 * truth
    assert (guarded & p.bleed_mask).sum() > 0.7 * truth


def capped_head(rng: np.random.Generator, shape: tuple[int, int, int] = (14, 160, 160)) -> tuple[np.ndarray, ...]:
    """5 mm slices through the top of a head: one slice cuts the skull cap (bone and brain in one slice: 220 HU),
    the slice under it reads 70 HU across the whole brain (the cap's partial volume), and a 70 HU subdural runs
    from that slice down along the right inner table. Returns the HU, the subdural and the blood-like slice."""
    z, y, x = np.meshgrid(
        *[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij"
    )
    r = np.sqrt(y**2 + x**2)
    level = np.broadcast_to(np.arange(shape[0])[:, None, None], shape)
    hu = np.full(shape, -1000.0, dtype=np.float32)
    hu[(level >= 1) & (r <= 66)] = 1000.0
    hu[(level >= 3) & (r <= 60)] = 35.0
    hu[(level == 1) & (r <= 66)] = 220.0
    hu[(level == 2) & (r <= 60)] = 70.0
    subdural = (level >= 2) & (level <= 9) & (r > 50) & (r <= 60) & (x > 25)
    hu[subdural] = 70.0
    cap = (level == 2) & (r <= 60) & ~subdural
    hu = ndimage.gaussian_filter(hu, sigma=(0.3, 1.0, 1.0)) + rng.normal(0.0, 4.0, shape).astype(np.float32)
    return hu, subdural, cap


def test_a_slice_under_the_skull_cap_that_reads_like_blood_is_not_grown_into() -> None:
    """0.5.2's barrier (300 HU) did not count the cap's slice (220 HU), and the subdural's mask spread over the
    whole slice under it: twice a subdural's volume on two development heads cut at 5 mm."""
    hu, subdural, cap = capped_head(np.random.default_rng(1))
    levels = np.arange(hu.shape[0])[:, None, None]
    bbox, seed = cropped((0, 0, 0), subdural & (levels >= 5) & (levels < 8))
    before = GROWTH.model_copy(update={"barrier": 300.0, "open_mm": 1.0})  # 0.5.2's

    grown = as_full(*grow(hu, SPACING, bbox, seed, GROWTH, BLOOD_RANGE), hu.shape)
    leaky = as_full(*grow(hu, SPACING, bbox, seed, before, BLOOD_RANGE), hu.shape)

    assert (leaky & cap).sum() > 0.3 * cap.sum()
    assert (grown & cap).sum() < 0.02 * cap.sum()
    assert (grown & subdural).sum() > 0.7 * subdural.sum() and (grown & ~subdural).sum() < 0.1 * subdural.sum()


@pytest.mark.parametrize("thickness_mm", [6.0, 7.0])
def test_opening_no_longer_cuts_a_thin_subdural_from_its_region(thickness_mm: float) -> None:
    """With the barrier taking the band along the skull, a 6-7 mm crescent on 5 mm slices is left a few voxels
    thick: opening (0.5.2's open_mm 1) cut most of it away from the part the network saw."""
    hu, crescent = subdural_head(np.random.default_rng(1), thickness_mm=thickness_mm)
    rows = np.nonzero(crescent.any(axis=(0, 2)))[0]
    middle = rows[0] + 2 * len(rows) // 5
    bbox, seed = seed_in(crescent, slice(middle, middle + len(rows) // 5))
    opening = GROWTH.model_copy(update={"open_mm": 1.0})

    grown = as_full(*grow(hu, SPACING, bbox, seed, GROWTH, BLOOD_RANGE), hu.shape)
    opened = as_full(*grow(hu, SPACING, bbox, seed, opening, BLOOD_RANGE), hu.shape)

    assert (grown & crescent).sum() > 1.5 * (opened & crescent).sum()
    assert (grown & ~crescent).sum() < 0.1 * crescent.sum()


def test_nothing_to_grow_into_leaves_the_region_as_it_was() -> None:
    hu = np.full((12, 64, 64), 35.0, dtype=np.float32)
    hu[5:7, 30:36, 30:36] = 70.0
    mask = np.ones((2, 6, 6), dtype=bool)
    bbox, grown = grow(hu, SPACING, (5, 30, 30, 7, 36, 36), mask, GROWTH, BLOOD_RANGE)
    assert bbox == (5, 30, 30, 7, 36, 36) and grown.all()


def test_two_pieces_of_one_crescent_that_grow_into_it_are_one_finding_measured_once() -> None:
    """The network saw both ends of a crescent as two regions: each grows into the whole crescent, and the
    detector reports one finding, with the higher probability, whose volume is the crescent's."""
    hu, crescent = subdural_head(np.random.default_rng(2))
    rows = np.nonzero(crescent.any(axis=(0, 2)))[0]
    output = builtin_spec("ct-hemorrhage").manifest.outputs[0]
    volume = as_volume(hu, SPACING)
    pieces = []
    for probability, part in ((0.9, slice(rows[0] + 20, rows[0] + 35)), (0.7, slice(rows[-1] - 35, rows[-1] - 20))):
        grown = grow(hu, SPACING, *seed_in(crescent, part), GROWTH, BLOOD_RANGE)
        pieces.append(_finding(output, probability, *grown, volume, keep_mask=True))

    merged = _merged(output, pieces, volume)

    assert len(merged) == 1 and merged[0].probability == 0.9
    true_ml = crescent.sum() * np.prod(SPACING) / 1000
    assert 0.8 <= merged[0].measurement("volume") / true_ml <= 1.25, (merged[0].measurements, true_ml)
    assert sum(p.measurement("volume") for p in pieces) > 1.3 * true_ml  # the overlap was counted twice


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("growth = { margin_mm = 40, background = [45, 15], barrier = 300 }", "low < high < barrier"),
        ("growth = { margin_mm = 0, background = [15, 45], barrier = 300 }", "margin_mm"),
    ],
)
def test_a_bad_growth_table_is_refused_naming_the_key(tmp_path, line: str, message: str) -> None:  # noqa: ANN001
    source = builtin_spec("ct-hemorrhage").manifest_path.read_text()
    start = source.index("growth = {")
    path = tmp_path / "manifest.toml"
    path.write_text(source[:start] + line + source[source.index("\n", start) :])
    with pytest.raises(ManifestError, match=message):
        load_manifest(path)


def test_the_edge_lies_half_way_from_the_tissue_and_clear_of_its_spread() -> None:
    from models.growth import _edge_value

    seed = np.zeros((1, 40, 40), dtype=bool)
    seed[0, :10] = True
    no_tissue = np.where(seed, 80.0, 70.0)  # nothing in the background range: its middle stands for the tissue
    assert _edge_value(no_tissue, float(np.median(no_tissue[seed])), (15.0, 45.0), 40.0) == pytest.approx(55.0)
    rng = np.random.default_rng(0)
    noisy = np.where(seed, 50.0, rng.normal(30.0, 4.0, seed.shape))  # half way (40) lies within three deviations
    assert _edge_value(noisy, float(np.median(noisy[seed])), (15.0, 45.0), 40.0) == pytest.approx(
        30.0 + 3 * 4.0, abs=1.5
    )
