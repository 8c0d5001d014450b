"""Population stability index (PSI) of one input feature: current window against baseline.

    PSI = sum over bins (current share - baseline share) * ln(current share / baseline share)

Numeric features: bins at the baseline's deciles (and at each decile itself); categorical: one bin per value
(missing is a value). Shares are floored at 0.5 / n so that an empty bin counts without dividing by zero. Rule of
thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 shifted."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np


def psi_numeric(baseline: Sequence[float | None], current: Sequence[float | None]) -> float | None:
    base = np.array([v for v in baseline if v is not None], dtype=float)
    now = np.array([v for v in current if v is not None], dtype=float)
    if base.size < 2 or now.size < 1:
        return None
    edges = np.unique(np.percentile(base, np.linspace(10, 90, 9)))
    return _psi(_bins(edges, base), _bins(edges, now))


def _bins(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts per interval between edges and per edge itself (a value equal to an edge has its own bin), so a
    baseline that never varies (every scan 5 mm) still tells 1 mm and 10 mm apart from 5."""
    index = np.searchsorted(edges, values, side="left") + np.searchsorted(edges, values, side="right")
    return np.bincount(index, minlength=2 * len(edges) + 1)


def psi_categorical(baseline: Sequence[object], current: Sequence[object]) -> float | None:
    if not baseline or not current:
        return None
    b, c = Counter(map(str, baseline)), Counter(map(str, current))
    values = sorted(set(b) | set(c))
    return _psi(np.array([b[v] for v in values]), np.array([c[v] for v in values]))


def _psi(base_counts: np.ndarray, current_counts: np.ndarray) -> float:
    b = np.maximum(base_counts / base_counts.sum(), 0.5 / base_counts.sum())
    c = np.maximum(current_counts / current_counts.sum(), 0.5 / current_counts.sum())
    return round(float(np.sum((c - b) * np.log(c / b))), 4)
