"""Detection metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import (
    auc,
    auc_interval,
    dice,
    ece_if_calibrated,
    ece_interval,
    expected_calibration_error,
    report,
    wilson,
)


def test_auc_counts_pairs_and_ties() -> None:
    labels = np.array([True, True, False, False])
    assert auc(np.array([0.9, 0.8, 0.2, 0.1]), labels) == 1.0
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), labels) == 0.0
    assert auc(np.array([0.9, 0.5, 0.5, 0.1]), labels) == pytest.approx(0.875)  # 3 wins + 1 tie of 4
    with pytest.raises(ValueError):
        auc(np.array([0.5]), np.array([True]))


def test_calibration_error_and_dice() -> None:
    assert expected_calibration_error(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == 0.0
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([0.0, 0.0])) == pytest.approx(0.9)
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2], b[1:3] = True, True
    assert dice(a, b) == pytest.approx(0.5) and dice(a, a) == 1.0 and dice(a & False, b & False) == 1.0


def test_report_at_threshold() -> None:
    r = report(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, 0]), 0.5, [0.8, 0.6])
    assert (r.sensitivity, r.specificity, r.dice_median, r.cases, r.positives) == (0.5, 0.5, 0.7, 4, 2)


def test_wilson_interval_is_honest_at_the_edges_and_narrows_with_more_cases() -> None:
    low, high = wilson(20, 20)
    assert high == 1.0 and 0.8 < low < 0.85  # 20 of 20 is not proof of 100%
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 0) is None
    assert wilson(90, 100)[1] - wilson(90, 100)[0] < wilson(9, 10)[1] - wilson(9, 10)[0]
    low, high = wilson(45, 50)
    assert low < 0.9 < high


def test_auc_interval_contains_the_auc_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    labels = np.r_[np.ones(40, bool), np.zeros(40, bool)]
    scores = np.r_[rng.normal(1.0, 1.0, 40), rng.normal(0.0, 1.0, 40)]
    low, high = auc_interval(scores, labels)
    assert low < auc(scores, labels) < high and 0.1 < high - low < 0.4
    assert auc_interval(scores, labels) == (low, high)


def test_calibration_error_has_an_interval_and_is_read_against_what_sampling_alone_gives() -> None:
    rng = np.random.default_rng(4)
    probs = rng.random(60)
    calibrated = (rng.random(60) < probs).astype(float)  # labels drawn with their own scores' probability
    uninformative = (rng.random(60) < 0.5).astype(float)  # labels unrelated to the scores
    ece, (low, high) = expected_calibration_error(probs, calibrated), ece_interval(probs, calibrated)
    floor = ece_if_calibrated(probs)
    assert low <= ece <= high and ece_interval(probs, calibrated) == (low, high)  # seeded
    assert 0.05 < floor < 0.2, "60 cases in 10 bins: a calibrated model's error is not zero"
    assert low < floor < high, "the calibrated labels' error is within what sampling gives"
    bad = expected_calibration_error(probs, uninformative)
    assert ece_interval(probs, uninformative)[0] > floor, f"uninformative scores ({bad:.2f}) stand out"
    r = report(probs, calibrated.astype(bool), 0.5, [])
    assert r.ece_ci == (low, high) and r.ece_if_calibrated == pytest.approx(floor)


def test_a_negative_only_set_reports_specificity_and_false_positive_rate_only() -> None:
    r = report(np.array([0.1, 0.7, 0.2, 0.3]), np.array([0, 0, 0, 0]), 0.5, [])
    assert (r.specificity, r.false_positive_rate, r.positives) == (0.75, 0.25, 0)
    assert r.auc is None and r.sensitivity is None and r.sensitivity_ci is None and r.ece is None
    assert r.ece_ci is None and r.ece_if_calibrated is None
    assert r.specificity_ci[0] < 0.75 < r.specificity_ci[1]
    with pytest.raises(ValueError, match="no cases"):
        report(np.array([]), np.array([], bool), 0.5, [])


def test_a_lesion_cut_into_fragments_by_the_truth_counts_once_where_the_generator_says_so() -> None:
    """Two fragments 10 voxels apart: two lesions by connectivity, one where the generator labels them as one
    planted bleed."""
    from models.image import ImageVolume, axial_affine
    from models.phantom_evaluation import Case, _lesions

    truth = np.zeros((4, 40, 40), bool)
    truth[1:3, 5:10, 5:10] = truth[1:3, 5:10, 20:25] = True
    volume = ImageVolume(
        np.zeros(truth.shape, np.float32), (5.0, 1.0, 1.0), axial_affine((5.0, 1.0, 1.0)), "", "CT", ("",) * 4
    )
    by_connectivity = _lesions(Case(volume, True, truth))
    by_generator = _lesions(Case(volume, True, truth, lesions=truth.astype(np.int16)))
    assert len(set(np.unique(by_connectivity)) - {0}) == 2
    assert set(np.unique(by_generator)) == {0, 1}
