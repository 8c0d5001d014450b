"""The detector runner and the built-in models: geometry, findings, committed weights, training, calibration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from models.detector import Detector, ShapeMismatch, prepare
from models.evaluation import fit_below_scale, fit_platt, roc_curve
from models.findings import Finding, Measurement
from models.geometry import longest_diameter_mm
from models.image import ImageVolume, central_field
from models.manifest import Calibration, Code, Manifest, load_manifest
from models.phantom_evaluation import fit_calibration, uncalibrated, write_calibration
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from models.regions import cropped
from models.registry import builtin_spec
from tests.support.volumes import as_volume

CODE = Code(scheme="SCT", value="1386000", meaning="Intracranial hemorrhage")


def overlaps(finding: Finding, truth: np.ndarray) -> bool:
    box = tuple(slice(a, b) for a, b in zip(finding.bbox[:3], finding.bbox[3:], strict=True))
    return bool(truth[box].any())


def test_findings_come_back_on_the_volume_grid_at_any_spacing(ct_model: Detector) -> None:
    """A bleed phantom resampled to thin slices and fine pixels: the finding is placed on that grid."""
    p = ct_head(np.random.default_rng(9501), bleeds=1)  # a 5 mL intraparenchymal bleed of 78 HU
    fine = torch.nn.functional.interpolate(
        torch.from_numpy(p.hu)[None, None], scale_factor=(2.0, 1.5, 1.5), mode="trilinear"
    )[0, 0].numpy()
    truth = (
        torch.nn.functional.interpolate(torch.from_numpy(p.bleed_mask.astype(np.float32))[None, None], size=fine.shape)[
            0, 0
        ].numpy()
        > 0.5
    )
    volume = as_volume(fine, (2.5, 1.0, 1.0))
    maps = ct_model.probability_maps(volume)
    assert maps.shape[0] == 1 and maps.min() >= 0.0 and maps.max() <= 1.0
    findings = ct_model.predict(volume)
    assert findings and overlaps(findings[0], truth)
    f = findings[0]
    assert f.mask is not None and f.mask.shape == tuple(b - a for a, b in zip(f.bbox[:3], f.bbox[3:], strict=True))
    assert all(0 <= lo < hi <= n for lo, hi, n in zip(f.bbox[:3], f.bbox[3:], fine.shape, strict=True))
    native = ct_model.predict(as_volume(p.hu, p.spacing_mm))[0].measurement("volume")
    assert 0.7 * native <= f.measurement("volume") <= 1.3 * native, (f.measurements, native)
    assert f.code.value == "1386000" and 0.0 <= f.probability <= 1.0


def test_ct_hemorrhage_finds_planted_bleeds_and_nothing_on_clean_phantoms(ct_model: Detector) -> None:
    for seed in (9500, 9501, 9502):
        p = ct_head(np.random.default_rng(seed), bleeds=1)
        findings = ct_model.predict(as_volume(p.hu, p.spacing_mm))
        assert findings, f"seed {seed}: missed a {p.lesions[0].volume_ml:.1f} mL {p.lesions[0].kind} bleed"
        assert overlaps(findings[0], p.bleed_mask) and findings[0].probability >= 0.5
        assert findings[0].measurement("longest diameter") > 0
    for seed in (9600, 9601, 9602):
        p = ct_head(np.random.default_rng(seed), bleeds=0, lookalikes=True)
        assert ct_model.predict(as_volume(p.hu, p.spacing_mm)) == [], f"seed {seed}: false positive"


def test_cxr_pneumothorax_finds_and_boxes_a_pneumothorax_and_passes_clean_films(cxr_model: Detector) -> None:
    for seed in (9700, 9701, 9702):
        p = chest_radiograph(np.random.default_rng(seed), pneumothorax=True)
        volume = as_volume(p.image[None], (1.0, *p.spacing_mm), "DX")
        findings = cxr_model.predict(volume)
        assert findings, f"seed {seed}: missed a {p.side} pneumothorax of {p.pneumothorax_mask.sum()} pixels"
        assert overlaps(findings[0], p.pneumothorax_mask[None]) and findings[0].mask is None  # detector: box only
        assert findings[0].measurement("area") > 0 and findings[0].code.value == "36118008"
    for seed in (9800, 9801, 9802):
        p = chest_radiograph(np.random.default_rng(seed), pneumothorax=False)
        assert cxr_model.predict(as_volume(p.image[None], (1.0, *p.spacing_mm), "DX")) == [], f"seed {seed}"


def test_a_full_size_radiograph_is_read_at_the_model_size_and_boxed_on_the_full_grid(cxr_model: Detector) -> None:
    p = chest_radiograph(np.random.default_rng(9701), pneumothorax=True)
    big = np.kron(p.image, np.ones((8, 8), np.float32)) * 3000 + 200  # 2048 x 2048, detector grey levels
    findings = cxr_model.predict(as_volume(big[None], (1.0, 0.175, 0.175), "DX"))
    assert findings and overlaps(findings[0], np.kron(p.pneumothorax_mask, np.ones((8, 8), bool))[None])
    assert findings[0].bbox[4] > 256 or findings[0].bbox[5] > 256  # on the 2048 grid, not the 256 one


def _preprocessed(**changes: object) -> Manifest:
    """The radiograph model's manifest with these preprocessing settings changed."""
    manifest = builtin_spec("cxr-pneumothorax").manifest
    return manifest.model_copy(update={"preprocessing": manifest.preprocessing.model_copy(update=changes)})


def test_a_wide_film_is_padded_with_its_edge_pixels_so_a_lung_cut_by_the_border_meets_no_dark_band() -> None:
    manifest = builtin_spec("cxr-pneumothorax").manifest
    assert manifest.preprocessing.pad == "edge"
    film = torch.linspace(0.0, 1.0, 300).repeat(200, 1)[None, None]  # 200 x 300: padded below to a square
    x, size = prepare(manifest, film, (1.0, 1.0))
    assert tuple(x.shape[2:]) == (256, 256) and size == (171, 256)
    assert torch.equal(x[0, 0, size[0] :], x[0, 0, size[0] - 1 : size[0]].expand(256 - size[0], 256))
    x, _ = prepare(_preprocessed(pad="minimum"), film, (1.0, 1.0))
    assert float(x[0, 0, size[0] :].max()) == float(x.min())


def _through(film: np.ndarray, curve) -> np.ndarray:  # noqa: ANN001
    """A grey-level curve on the film's own darkest-to-brightest range (as a site's look-up table would be)."""
    low, high = float(film.min()), float(film.max())
    return (low + curve((film.astype(np.float64) - low) / (high - low)) * (high - low)).astype(np.float32)


def test_ranked_grey_levels_do_not_change_with_a_tone_curve_that_keeps_their_order() -> None:
    manifest = _preprocessed(normalize="central-rank")
    p = chest_radiograph(np.random.default_rng(9711), pneumothorax=True)  # drawn at the model's size: no shrinking
    x, size = prepare(manifest, torch.from_numpy(p.image)[None, None], p.spacing_mm)
    assert size == p.image.shape
    for curve in (np.square, np.sqrt, lambda v: 1 - np.exp(-4 * v), lambda v: v**3 * 0.2 + v * 0.8):
        y, _ = prepare(manifest, torch.from_numpy(_through(p.image, curve))[None, None], p.spacing_mm)
        assert float((x - y).abs().max()) < 2e-3  # float32 rounding may merge two grey levels: a tie
    # the central field's 1st..99th percentile spans 0..1; darker and brighter values, by their rank in the image
    field = central_field(x[0, 0, : size[0], : size[1]])
    assert float(field.quantile(0.01)) == pytest.approx(0.0, abs=0.01)
    assert float(field.quantile(0.99)) == pytest.approx(1.0, abs=0.01)
    assert float(x.min()) >= -0.5 and float(x.max()) <= 1.5
    # the order of values is kept: a brighter pixel is never mapped darker
    order = torch.from_numpy(p.image).flatten().argsort()
    assert bool((x[0, 0, : size[0], : size[1]].flatten()[order].diff() >= 0).all())
    # with percentiles, the same curve moves the lungs' grey levels (what cost 0.5.0 its pneumothoraces)
    central = _preprocessed(normalize="central")
    a, _ = prepare(central, torch.from_numpy(p.image)[None, None], p.spacing_mm)
    b, _ = prepare(central, torch.from_numpy(_through(p.image, np.square))[None, None], p.spacing_mm)
    assert float((a - b).abs().mean()) > 0.05


def test_ranked_grey_levels_keep_a_flat_region_flat_and_a_constant_film_finite() -> None:
    manifest = _preprocessed(normalize="central-rank")
    film = torch.zeros(1, 1, 200, 256)
    film[..., 50:150, 64:192] = 1.0  # most of the central field one value, the rest another
    x, _ = prepare(manifest, film, (1.0, 1.0))
    inside = x[0, 0, 50:150, 64:192]
    assert bool((inside == inside[0, 0]).all())  # ties share one rank: no noise made out of a flat region
    assert bool(torch.isfinite(prepare(manifest, torch.full((1, 1, 64, 64), 7.0), (1.0, 1.0))[0]).all())


def test_a_two_d_model_runs_a_ct_volume_slice_by_slice_in_batches(cxr_model: Detector) -> None:
    volume = as_volume(np.random.default_rng(0).normal(size=(40, 64, 64)), (2.0, 1.0, 1.0), "DX")
    maps = cxr_model.probability_maps(volume)
    assert maps.shape == (1, 40, 256, 256)  # 40 slices in batches of 16, each at the model's input size


def test_a_network_with_the_wrong_output_shape_is_a_clear_error(ct_model: Detector) -> None:
    wrong = Detector(ct_model.manifest, lambda x: x[:, :, :-1], "cpu", ct_model.uid)
    with pytest.raises(ShapeMismatch, match=r"expected \(N, 1, \*spatial\)"):
        wrong.predict(as_volume(np.zeros((4, 32, 32)), (5.0, 1.5, 1.5)))


def test_findings_validate_their_geometry_and_units() -> None:
    box = (0, 0, 0, 2, 4, 4)
    Finding("x", CODE, 0.7, box, (1.0, 2.0, 2.0), (Measurement("volume", 1.0, "ml"),), np.ones((2, 4, 4), bool))
    with pytest.raises(ValueError, match="probability"):
        Finding("x", CODE, 1.2, box, (1.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="centre"):
        Finding("x", CODE, 0.7, box, (5.0, 2.0, 2.0))
    with pytest.raises(ValueError, match="mask shape"):
        Finding("x", CODE, 0.7, box, (1.0, 2.0, 2.0), mask=np.ones((3, 4, 4), bool))
    with pytest.raises(ValueError, match="UCUM"):
        Measurement("volume", 1.0, "litres")


def test_a_mask_is_cut_to_its_voxels_and_placed_in_volume_indices() -> None:
    mask = np.zeros((4, 6, 8), bool)
    mask[1, 2:4, 3] = mask[2, 3, 5] = True
    bbox, cut = cropped((10, 20, 30), mask)
    assert bbox == (11, 22, 33, 13, 24, 36)
    assert cut.shape == (2, 2, 3) and cut.sum() == 3 and cut[0, 0, 0] and cut[1, 1, 2]


def test_longest_diameter_of_a_rectangle() -> None:
    mask = np.zeros((1, 20, 20), bool)
    mask[0, 2:5, 3:11] = True  # 3 x 8 pixels at 0.5 mm: corners 1 mm x 3.5 mm apart, plus a pixel
    assert longest_diameter_mm(mask, (0.5, 0.5)) == pytest.approx(np.hypot(1.0, 3.5) + 0.5)


def test_longest_diameter_is_that_of_the_widest_slice_whatever_the_order() -> None:
    """Slices are visited by their bounding box's diagonal and skipped once it cannot beat the longest: an
    L-shaped slice (long diagonal box, shorter real extent) must not hide a straight one."""
    mask = np.zeros((3, 40, 40), bool)
    mask[0, 0:30, 0:2] = mask[0, 28:30, 0:30] = True  # an L: box diagonal 41 px, longest chord about 41 px
    mask[1, 5:6, 2:38] = True  # a bar: 35 px
    mask[2, 0:1, 0:3] = True
    expected = max(np.hypot(29, 29), 35.0) + 1.0
    assert longest_diameter_mm(mask, (1.0, 1.0)) == pytest.approx(expected)
    assert longest_diameter_mm(np.zeros((2, 5, 5), bool), (1.0, 1.0)) == 0.0


def test_platt_scaling_recovers_a_known_miscalibration_and_stays_finite_when_separable() -> None:
    rng = np.random.default_rng(0)
    true_logit = rng.normal(0, 2, 4000)
    labels = rng.random(4000) < 1 / (1 + np.exp(-true_logit))
    overconfident = 1 / (1 + np.exp(-(3 * true_logit - 1)))  # what a model might say
    slope, intercept = fit_platt(overconfident, labels)
    assert slope == pytest.approx(1 / 3, abs=0.05) and intercept == pytest.approx(1 / 3, abs=0.1)
    separable = fit_platt(np.array([0.1, 0.2, 0.8, 0.9]), np.array([False, False, True, True]))
    assert all(np.isfinite(separable)) and 0.05 <= separable[0] <= 20
    calibrated = Calibration(slope=slope, intercept=intercept)
    assert calibrated.apply(0.9) < 0.9 and Calibration().apply(0.9) == 0.9


def test_studies_with_no_sure_region_are_calibrated_to_the_rate_observed_among_them() -> None:
    """One sigmoid over all studies overstates the studies under the mask threshold (1 in 20 positive here).
    The factor brings them to their observed rate, keeps every study's order and leaves the rest."""
    rng = np.random.default_rng(3)
    low, high = rng.uniform(0.05, 0.45, 200), rng.uniform(0.55, 1.0, 200)
    raw = np.concatenate([low, high])
    labels = np.concatenate([rng.random(200) < 0.05, rng.random(200) < high])
    calibration = fit_calibration(raw, labels, below=0.5)
    platt = Calibration(slope=calibration.slope, intercept=calibration.intercept)

    assert calibration.below == 0.5 and 0.05 <= calibration.below_scale < 1.0
    assert np.mean([platt.apply(float(r)) for r in low]) > 1.3 * labels[:200].mean()  # the sigmoid alone
    calibrated = np.array([calibration.apply(float(r)) for r in raw])
    assert calibrated[:200].mean() == pytest.approx(labels[:200].mean(), abs=0.01)
    assert all(calibration.apply(float(r)) == platt.apply(float(r)) for r in high)
    order = np.argsort(raw)
    assert np.all(np.diff(calibrated[order]) >= 0)
    assert fit_below_scale(high, labels[200:], platt.apply, 0.5) == 1.0  # no study under it: no factor


def test_a_calibration_that_would_raise_or_zero_low_scores_is_refused() -> None:
    for scale in (0.0, 1.5):
        with pytest.raises(ValidationError):
            Calibration(slope=1.0, intercept=0.0, below=0.5, below_scale=scale)


def test_roc_curve_points() -> None:
    fpr, tpr = roc_curve(np.array([0.9, 0.8, 0.3, 0.1]), np.array([True, False, True, False]))
    assert list(fpr) == [0.0, 0.0, 0.5, 0.5, 1.0] and list(tpr) == [0.0, 0.5, 0.5, 1.0, 1.0]


def test_calibration_is_written_into_the_manifest_keeping_the_rest(tmp_path: Path) -> None:
    spec = builtin_spec("cxr-pneumothorax")
    copy = tmp_path / "manifest.toml"
    shutil.copy(spec.manifest_path, copy)
    shutil.copy(spec.weights_path, tmp_path / "weights.pt")
    fitted = Calibration(slope=0.5, intercept=-0.25, below=0.5, below_scale=0.4)
    write_calibration(copy, fitted)
    written = load_manifest(copy)
    assert written.outputs[0].calibration == fitted
    assert uncalibrated(written).outputs[0].calibration == Calibration()
    assert written.model_copy(update={"outputs": spec.manifest.outputs}) == spec.manifest


@pytest.mark.parametrize("module", ["models.train_ct_hemorrhage", "models.train_cxr_pneumothorax"])
def test_training_is_seeded_and_writes_weights_with_their_config(module: str, tmp_path: Path) -> None:
    import importlib

    trainer = importlib.import_module(module)
    small = {"steps": 2, "pool": 2, "batch": 1}
    if hasattr(trainer, "HardNegatives"):  # cxr: a second phase on abdomen films, from the first phase's weights
        small["hard_negatives"] = trainer.HardNegatives(steps=2, batch=1, chest_films=1, abdomen_films=1)
    config = trainer.TrainConfig(**small)
    runs = [trainer.train(config, tmp_path / f"w{i}.pt", log=lambda _: None) for i in range(2)]
    assert runs[0]["config"]["steps"] == 2 and (tmp_path / "w0.json").is_file()
    if "hard_negatives" in small:
        record = json.loads((tmp_path / "w0.json").read_text())
        assert record["config"]["steps"] == 2 and record["hard_negatives"]["config"]["abdomen_films"] == 1
    first, second = (torch.load(tmp_path / f"w{i}.pt", weights_only=True) for i in range(2))
    assert all(torch.equal(first[k], second[k]) for k in first), "same seed, same weights"


def test_training_channels_last_is_seeded_recorded_and_saves_the_standard_layout(tmp_path: Path) -> None:
    from models.train_cxr_pneumothorax import TrainConfig, train

    config = TrainConfig(steps=2, pool=2, batch=1, hard_negatives=None, channels_last=True)
    runs = [train(config, tmp_path / f"w{i}.pt", log=lambda _: None) for i in range(2)]
    assert runs[0]["config"]["channels_last"] is True
    first, second = (torch.load(tmp_path / f"w{i}.pt", weights_only=True) for i in range(2))
    assert all(torch.equal(first[k], second[k]) for k in first), "same seed, same weights"
    assert all(t.is_contiguous() for t in first.values()), "saved in the layout every loader expects"


def test_the_hard_negative_phase_starts_from_the_first_phases_weights(tmp_path: Path) -> None:
    from models.train_cxr_pneumothorax import HardNegatives, TrainConfig, train, tune_on_hard_negatives

    weights = tmp_path / "w.pt"
    train(TrainConfig(steps=2, pool=2, batch=1, hard_negatives=None), weights, log=lambda _: None)
    first = torch.load(weights, weights_only=True)
    still = TrainConfig(hard_negatives=HardNegatives(steps=2, batch=1, chest_films=1, abdomen_films=1, lr=0.0))
    tune_on_hard_negatives(still, weights, log=lambda _: None)
    tuned = torch.load(weights, weights_only=True)
    assert all(torch.equal(first[k], tuned[k]) for k in first), "at rate 0 the tuned weights are the first phase's"
    with pytest.raises(ValueError, match="no hard-negative phase"):
        tune_on_hard_negatives(TrainConfig(hard_negatives=None), weights)


def test_a_study_scores_at_or_above_the_threshold_exactly_when_it_has_a_finding(cxr_model: Detector) -> None:
    output = cxr_model.manifest.outputs[0]
    seen = set()
    for seed in range(9900, 9912):
        p = chest_radiograph(np.random.default_rng(seed))
        analysis = cxr_model.analyse(as_volume(p.image[None], (1.0, *p.spacing_mm), "DX"))
        score = analysis.scores[output.label]
        assert 0.0 <= score <= 1.0 and (score >= output.threshold) == bool(analysis.findings), (seed, score)
        seen.add(bool(analysis.findings))
    assert seen == {True, False}


def test_a_sagittal_stack_finds_the_same_voxels_as_the_axial_one() -> None:
    """The same head stored as axial and sagittal slices (axes swapped and flipped as a scanner's reformat
    would, the affine saying so): the same findings, mapped back onto each series' own voxels. The stand-in
    model (a fixed filter, no training) makes the comparison exact."""
    ct_model = builtin_spec("standin-hyperdense").load("cpu")
    p = ct_head(np.random.default_rng(9501), bleeds=1, lookalikes=False)
    axial = ct_model.predict(as_volume(p.hu, p.spacing_mm))
    assert axial
    s = p.spacing_mm
    # Sagittal: slices left to right (+L), rows head to feet (-S), columns front to back (+P).
    sag = np.ascontiguousarray(np.flip(np.transpose(p.hu, (2, 0, 1)), axis=1))
    n = p.hu.shape
    affine = np.zeros((4, 4))
    affine[0, 0], affine[2, 1], affine[1, 2], affine[3, 3] = s[2], -s[0], s[1], 1.0
    affine[2, 3] = (n[0] - 1) * s[0]
    volume = ImageVolume(sag, (s[2], s[0], s[1]), affine, "1.2.3", "CT", tuple(f"1.{i}" for i in range(len(sag))))
    found = {f.bbox: f for f in ct_model.predict(volume)}
    assert len(found) == len(axial)
    for a in axial:
        z0, y0, x0, z1, y1, x1 = a.bbox
        b = found[(x0, n[0] - z1, y0, x1, n[0] - z0, y1)]
        assert np.array_equal(b.mask, np.flip(np.transpose(a.mask, (2, 0, 1)), axis=1))
        assert b.probability == a.probability and b.measurements == a.measurements
