"""Detection metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import auc, dice, expected_calibration_error, report


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
