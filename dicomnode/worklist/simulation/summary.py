"""The figures of one simulation: per policy and order class, waits (mean, median, p95, maximum), the waits of the
truly critical studies, and the share of routine studies read past their class's maximum wait."""

from __future__ import annotations

from typing import Any

import numpy as np

from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist.scoring import ScoringPolicy
from dicomnode.worklist.simulation.arrivals import Stream


def waits_summary(waits: np.ndarray) -> dict[str, float | int]:
    if len(waits) == 0:
        return {"n": 0}
    return {
        "n": int(len(waits)),
        "mean_wait_min": round(float(np.mean(waits)), 2),
        "median_wait_min": round(float(np.median(waits)), 2),
        "p95_wait_min": round(float(np.percentile(waits, 95)), 2),
        "max_wait_min": round(float(np.max(waits)), 2),
    }


def policy_summary(stream: Stream, waits: np.ndarray, scoring: ScoringPolicy) -> dict[str, Any]:
    routine = stream.priority == PriorityClass.ROUTINE.value
    critical = waits_summary(waits[stream.critical])
    routine_waits = waits_summary(waits[routine])
    bound = scoring.max_wait(PriorityClass.ROUTINE)
    return {
        "critical_mean_wait_min": critical.get("mean_wait_min"),
        "critical_median_wait_min": critical.get("median_wait_min"),
        "critical_p95_wait_min": critical.get("p95_wait_min"),
        "critical_max_wait_min": critical.get("max_wait_min"),
        "critical_n": critical["n"],
        "routine_mean_wait_min": routine_waits.get("mean_wait_min"),
        "routine_p95_wait_min": routine_waits.get("p95_wait_min"),
        "routine_max_wait_min": routine_waits.get("max_wait_min"),
        "routine_past_bound_share": round(float(np.mean(waits[routine] > bound)), 4) if routine.any() else None,
        "all": waits_summary(waits),
        "by_class": {
            cls.name: waits_summary(waits[stream.priority == cls.value])
            for cls in PriorityClass
            if (stream.priority == cls.value).any()
        },
    }


def comparison(policies: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    """The node's policy against first come first served: how much shorter critical waits are, how much longer
    the longest routine wait is (a fraction: 0.6 is 60%)."""
    fifo, node = policies.get("fifo"), policies.get("dicomnode")
    if not fifo or not node:
        return {}

    def change(key: str) -> float | None:
        before, after = fifo.get(key), node.get(key)
        return round(after / before - 1, 4) if before and after is not None else None

    cut = change("critical_mean_wait_min")
    return {
        "critical_mean_wait_cut_vs_fifo": None if cut is None else round(-cut, 4),
        "routine_max_wait_growth_vs_fifo": change("routine_max_wait_min"),
    }
