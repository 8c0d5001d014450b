"""Detection metrics, numpy only: AUC, sensitivity and specificity at a threshold, Dice, calibration error,
with 95% confidence intervals (Wilson for proportions, a seeded percentile bootstrap for AUC and calibration
error)."""

from __future__ import annotations

from collections.abc import Callable
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


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (None for no trials): honest at 0 and 1 and for small samples."""
    if trials == 0:
        return None
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def auc_interval(scores: np.ndarray, labels: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the AUC, resampling positives and negatives separately (stratified,
    so every resample has both); seeded, so a report is reproducible."""
    rng = np.random.default_rng(seed)
    pos, neg = scores[labels], scores[~labels]
    values = []
    for _ in range(resamples):
        p, n = rng.choice(pos, len(pos)), rng.choice(neg, len(neg))
        values.append(((p[:, None] > n[None, :]).sum() + 0.5 * (p[:, None] == n[None, :]).sum()) / (len(p) * len(n)))
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def ece_interval(probs: np.ndarray, labels: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the calibration error, resampling cases; seeded."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(probs), (resamples, len(probs)))
    values = [expected_calibration_error(probs[d], labels[d]) for d in draws]
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def ece_if_calibrated(probs: np.ndarray, resamples: int = 2000, seed: int = 0) -> float:
    """The calibration error a perfectly calibrated model would show on these cases, on average: each label drawn
    with its own score's probability. On a few dozen cases it is well above zero (a bin of a handful of cases
    rarely lands on its mean), so a measured error is read against it, not against zero."""
    rng = np.random.default_rng(seed)
    labels = rng.random((resamples, len(probs))) < probs
    return float(np.mean([expected_calibration_error(probs, drawn.astype(float)) for drawn in labels]))


@dataclass(frozen=True)
class Report:
    """Study-level figures. Without positives (a negative-only set) only specificity and the false-positive
    rate are defined; AUC, sensitivity and calibration error are None."""

    cases: int
    positives: int
    auc: float | None
    auc_ci: tuple[float, float] | None
    sensitivity: float | None
    sensitivity_ci: tuple[float, float] | None
    specificity: float | None
    specificity_ci: tuple[float, float] | None
    false_positive_rate: float | None  # negatives flagged / negatives
    threshold: float
    dice_median: float | None  # over positive cases; None for models that do not segment
    ece: float | None  # study-level scores against study-level labels
    ece_ci: tuple[float, float] | None
    ece_if_calibrated: float | None  # what a perfectly calibrated model would show on these cases (sampling alone)

    def as_dict(self) -> dict:
        def rounded(v):  # noqa: ANN001, ANN202
            if isinstance(v, float):
                return round(v, 4)
            if isinstance(v, tuple):
                return [round(x, 4) for x in v]
            return v

        return {k: rounded(v) for k, v in asdict(self).items()}


def report(scores: np.ndarray, labels: np.ndarray, threshold: float, dices: list[float]) -> Report:
    labels = labels.astype(bool)
    flagged = scores >= threshold
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if len(labels) == 0:
        raise ValueError("no cases to report on")
    both = positives > 0 and negatives > 0
    found, cleared = int((flagged & labels).sum()), int((~flagged & ~labels).sum())
    return Report(
        cases=len(labels),
        positives=positives,
        auc=auc(scores, labels) if both else None,
        auc_ci=auc_interval(scores, labels) if both else None,
        sensitivity=found / positives if positives else None,
        sensitivity_ci=wilson(found, positives),
        specificity=cleared / negatives if negatives else None,
        specificity_ci=wilson(cleared, negatives),
        false_positive_rate=(negatives - cleared) / negatives if negatives else None,
        threshold=threshold,
        dice_median=float(np.median(dices)) if dices else None,
        ece=expected_calibration_error(scores, labels.astype(float)) if positives else None,
        ece_ci=ece_interval(scores, labels.astype(float)) if positives else None,
        ece_if_calibrated=ece_if_calibrated(scores) if positives else None,
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


def fit_below_scale(raw: np.ndarray, labels: np.ndarray, platt: Callable[[float], float], below: float) -> float:
    """The factor on calibrated probabilities of raw scores under `below`: the observed rate of positives among
    those studies over the mean probability `platt` gives them (1 without such studies), within 0.05..1."""
    low = raw < below
    if not low.any():
        return 1.0
    expected = float(sum(platt(float(r)) for r in raw[low]))
    return float(np.clip(labels[low].sum() / max(expected, 1e-9), 0.05, 1.0))
