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
    dice_median: float | None  # over positive cases; None for models that do not segment
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
        dice_median=float(np.median(dices)) if dices else None,
        ece=expected_calibration_error(scores, labels.astype(float)),
    )


def roc_curve(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score, from (0, 0) to (1, 1)."""
    labels = labels.astype(bool)
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps, fps = np.cumsum(y)[distinct], np.cumsum(~y)[distinct]
    return np.r_[0.0, fps / max(fps[-1], 1)], np.r_[0.0, tps / max(tps[-1], 1)]


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """Platt scaling: (slope, intercept) of a logistic fit of labels on logit(score) (scipy L-BFGS-B).

    Platt's smoothed targets ((N+ + 1) / (N+ + 2) and 1 / (N- + 2)) keep the fit finite when the
    scores separate the classes perfectly; the slope is bounded to 0.05..20 so calibration never
    reorders or flattens findings.
    """
    from scipy.optimize import minimize

    p = np.clip(scores.astype(float), 1e-6, 1 - 1e-6)
    z = np.log(p / (1 - p))
    labels = labels.astype(bool)
    positives, negatives = labels.sum(), (~labels).sum()
    y = np.where(labels, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        logit = w[0] * z + w[1]
        q = 1 / (1 + np.exp(-logit))
        nll = np.sum(np.logaddexp(0, logit) - y * logit)
        return float(nll), np.array([np.sum((q - y) * z), np.sum(q - y)])

    fit = minimize(loss, x0=[1.0, 0.0], jac=True, method="L-BFGS-B", bounds=[(0.05, 20.0), (-50.0, 50.0)])
    return float(fit.x[0]), float(fit.x[1])
