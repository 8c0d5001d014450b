"""Detection metrics, numpy only: AUC, sensitivity and specificity at a threshold, Dice, calibration error."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve: the probability that a positive outscores a negative (ties count half)."""
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("AUC needs positives and negatives")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """Mean |confidence - accuracy| over equal-width probability bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(probs, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(probs[members].mean() - labels[members].mean())
    return float(error)


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    total = pred.sum() + truth.sum()
    return 1.0 if total == 0 else float(2 * (pred & truth).sum() / total)


@dataclass(frozen=True)
class Report:
    cases: int
    positives: int
    auc: float
    sensitivity: float
    specificity: float
    threshold: float
    dice_median: float  # over positive cases
    ece: float  # study-level scores against study-level labels

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def report(scores: np.ndarray, labels: np.ndarray, threshold: float, dices: list[float]) -> Report:
    labels = labels.astype(bool)
    flagged = scores >= threshold
    return Report(
        cases=len(labels),
        positives=int(labels.sum()),
        auc=auc(scores, labels),
        sensitivity=float((flagged & labels).sum() / max(labels.sum(), 1)),
        specificity=float((~flagged & ~labels).sum() / max((~labels).sum(), 1)),
        threshold=threshold,
        dice_median=float(np.median(dices)) if dices else float("nan"),
        ece=expected_calibration_error(scores, labels.astype(float)),
    )
