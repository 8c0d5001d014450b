"""A region's peak density (models/peak.py): a faintly calcified falx, which the scanner's blur brings into blood's
range, is weighed down; blood is not, whether it lies alone, against the skull or beside a dense calcification."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import models.peak as peak_module
from models.detector import Detector
from models.manifest import Peak
from models.peak import peak_value, peak_weight
from models.registry import builtin_spec
from tests.support.volumes import as_volume

SPACING = (5.0, 0.5, 0.5)
PEAK = Peak(max_value=110.0, softness=5.0, barrier=300.0)
BLOOD_CORE = (40.0, 120.0)  # the detector keeps a region's voxels in the output's value range


def scan(hu: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Blurred like a 5 mm scan (0.8 mm in-plane) with 3 HU of noise."""
    blurred = ndimage.gaussian_filter(hu, sigma=(0.6, 0.8 / SPACING[1], 0.8 / SPACING[2]))
    return blurred + rng.normal(0.0, 3.0, hu.shape).astype(np.float32)


def grid(shape: tuple[int, int, int]) -> list[np.ndarray]:
    return np.meshgrid(*[(np.arange(n) - n / 2 + 0.5) * s for n, s in zip(shape, SPACING, strict=True)], indexing="ij")


def brain(shape: tuple[int, int, int] = (16, 160, 160)) -> np.ndarray:
    return np.full(shape, 35.0, dtype=np.float32)


def falx(hu: np.ndarray, density: float = 200.0) -> np.ndarray:
    """A midline plate 2 mm thick, 40 mm long, through the upper slices."""
    z, y, x = grid(hu.shape)
    plate = (np.abs(x) < 1.0) & (np.abs(y) < 20.0) & (z > -10.0)
    hu[plate] = density
    return plate


def blob(hu: np.ndarray, centre_x: float = 0.0, density: float = 70.0) -> np.ndarray:
    z, y, x = grid(hu.shape)
    lesion = ((z / 12.0) ** 2 + (y / 12.0) ** 2 + ((x - centre_x) / 6.0) ** 2) <= 1.0
    hu[lesion] = density
    return lesion


def region_of(values: np.ndarray, near: np.ndarray) -> tuple[tuple[int, ...], np.ndarray]:
    """What the detector would hand over: the voxels in blood's range within 2 mm of the structure."""
    grown = ndimage.binary_dilation(near, iterations=4)
    smooth = ndimage.gaussian_filter(values, sigma=(0.0, 0.7, 0.7))
    mask = grown & (smooth >= BLOOD_CORE[0]) & (smooth <= BLOOD_CORE[1])
    box = tuple(slice(int(ix.min()), int(ix.max()) + 1) for ix in np.nonzero(mask))
    return tuple(b.start for b in box) + tuple(b.stop for b in box), mask[box]


def weight(values: np.ndarray, near: np.ndarray, peak: Peak = PEAK) -> float:
    bbox, mask = region_of(values, near)
    return peak_weight(peak, peak_value(values, SPACING, bbox, mask, peak))


def test_a_region_denser_than_blood_can_be_is_weighed_down() -> None:
    hu = brain()
    dense = blob(hu, density=118.0)  # in the output's value range, but no acute blood reads this dense
    values = scan(hu, np.random.default_rng(1))
    bbox, mask = region_of(values, dense)
    assert peak_value(values, SPACING, bbox, mask, PEAK) > 112.0
    assert weight(values, dense) < 0.3


def test_a_faintly_calcified_falx_weighs_less_than_blood_in_its_place() -> None:
    """A 2 mm plate at 175 HU reads 60-100 HU either side of its midline, blood's range (ct-hemorrhage 0.5.1 flagged
    such heads); its peak still reads denser than a 6 mm layer of blood at 90 HU in the same place."""
    falx_hu, blood_hu = brain(), brain()
    plate = falx(falx_hu, density=175.0)
    z, y, x = grid(blood_hu.shape)
    layer = (np.abs(x) < 3.0) & (np.abs(y) < 20.0) & (z > -10.0)
    blood_hu[layer] = 90.0
    falx_values, blood_values = scan(falx_hu, np.random.default_rng(8)), scan(blood_hu, np.random.default_rng(8))
    bbox, mask = region_of(falx_values, plate)
    box = tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))
    assert 60.0 < float(np.median(falx_values[box][mask])) < 100.0
    assert weight(falx_values, plate) < 0.8 < 0.95 < weight(blood_values, layer)


def test_blood_keeps_its_weight() -> None:
    for seed, density in ((2, 60.0), (3, 90.0)):  # acute blood's range, at its densest too
        hu = brain()
        lesion = blob(hu, density=density)
        assert weight(scan(hu, np.random.default_rng(seed)), lesion) > 0.9


def test_blood_against_the_skull_is_not_judged_by_the_bone() -> None:
    hu = brain()
    z, y, x = grid(hu.shape)
    hu[x > 30.0] = 1000.0  # the skull's inner table
    lesion = (x > 24.0) & (x <= 30.0) & (np.abs(y) < 20.0)  # a subdural layer against it
    hu[lesion] = 70.0
    values = scan(hu, np.random.default_rng(4))
    assert weight(values, lesion) > 0.9
    assert weight(values, lesion, Peak(max_value=110.0, softness=5.0)) < 0.1  # without the barrier the bone decides


def test_blood_beside_a_dense_calcification_is_not_weighed_down() -> None:
    hu = brain()
    lesion = blob(hu)
    z, y, x = grid(hu.shape)
    hu[(z**2 + y**2 + (x + 10.0) ** 2) <= 5.0**2] = 600.0  # a calcified choroid plexus touching the blood
    assert weight(scan(hu, np.random.default_rng(5)), lesion) > 0.9


@pytest.mark.parametrize(("softness", "value", "expected"), [(5.0, None, 1.0), (0.0, 110.0, 1.0), (0.0, 110.1, 0.0)])
def test_weight_edges(softness: float, value: float | None, expected: float) -> None:
    assert peak_weight(Peak(max_value=110.0, softness=softness), value) == expected


def blood_like_network(x: torch.Tensor) -> torch.Tensor:
    """A stand-in network: sure wherever the windowed input (-20..180 HU to 0..1) reads denser than brain. It
    finds blood and a denser lesion alike; the peak must tell them apart."""
    return 40.0 * (x - 0.4)


@pytest.mark.parametrize("use_peak", [True, False])
def test_the_detector_weighs_its_regions_by_their_peak(use_peak: bool) -> None:
    manifest = builtin_spec("ct-hemorrhage").manifest
    assert manifest is not None and manifest.outputs[0].peak is not None
    if not use_peak:
        manifest = manifest.model_copy(
            update={"outputs": [o.model_copy(update={"peak": None}) for o in manifest.outputs]}
        )
    detector = Detector(manifest, blood_like_network, "cpu", "2.25.1")
    label = manifest.outputs[0].label
    threshold = manifest.outputs[0].threshold

    with_dense, with_blood = brain(), brain()
    blob(with_dense, density=118.0)
    blob(with_blood, density=75.0)
    dense_score = detector.analyse(as_volume(scan(with_dense, np.random.default_rng(6)), SPACING)).scores[label]
    blood_score = detector.analyse(as_volume(scan(with_blood, np.random.default_rng(7)), SPACING)).scores[label]
    assert blood_score >= threshold
    assert (dense_score < threshold) is use_peak, (dense_score, use_peak)


def test_a_region_read_in_slabs_gives_the_value_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """A region the height of the head is read CHUNK_SLICES at a time; the slabs, their seams and the barrier's
    reach across them change nothing."""
    shape = (40, 120, 120)
    hu = np.full(shape, 35.0, dtype=np.float32)
    z, y, x = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    lesion = (np.abs(y - 60) < 20) & (np.abs(x - 60) < 10)
    hu[lesion] = 80.0
    hu[lesion & (x == 68)] = 140.0  # a denser streak at its edge, on every slice
    hu[16, :, 72:] = 1000.0  # bone beside it on the first slice of the second slab: its reach covers slice 15
    values = scan(hu, np.random.default_rng(9))
    bbox, mask = (0, 40, 50, 40, 80, 70), lesion[:, 40:80, 50:70]
    slabs = peak_value(values, SPACING, bbox, mask, PEAK)
    monkeypatch.setattr(peak_module, "CHUNK_SLICES", 1000)
    assert peak_value(values, SPACING, bbox, mask, PEAK) == slabs


def air_network(x: torch.Tensor) -> torch.Tensor:
    """A stand-in network sure wherever the windowed input reads like air (under -10 HU)."""
    return 40.0 * (0.05 - x)


def test_a_region_in_the_scanners_padding_is_weighed_not_a_crash() -> None:
    """A region of -3024 HU padding (what scanners write outside their field of view) weighs ~0: the logistic
    factors once overflowed there (math.exp of 767), and the job failed instead of answering."""
    manifest = builtin_spec("ct-hemorrhage").manifest
    detector = Detector(manifest, air_network, "cpu", "2.25.1")
    hu = brain()
    hu[:, :, :60] = -3024.0
    analysis = detector.analyse(as_volume(hu, SPACING))
    assert analysis.findings == []
    assert analysis.scores[manifest.outputs[0].label] < 0.05
