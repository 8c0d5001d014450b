"""One simulation, declared once: the arrivals, every policy over the same studies, the figures, the plot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist.scoring import ScoringPolicy
from dicomnode.worklist.simulation import plot
from dicomnode.worklist.simulation.arrivals import Stream
from dicomnode.worklist.simulation.engine import POLICIES, queue_for, simulate
from dicomnode.worklist.simulation.scenario import Scenario
from dicomnode.worklist.simulation.summary import comparison, policy_summary


def offered_load(stream: Stream, readers: int) -> float:
    """Reader-minutes the studies ask for per reader-minute available over their span (1 is saturation)."""
    span = float(stream.minute.max() - stream.minute.min()) if len(stream) > 1 else 0.0
    return float(stream.read_minutes.sum()) / (readers * span) if span > 0 else 0.0


def run(
    stream: Stream,
    scenario: Scenario,
    scoring: ScoringPolicy,
    policies: tuple[str, ...] = POLICIES,
    plot_to: Path | None = None,
) -> dict[str, Any]:
    detector = scenario.detector
    results, waits = {}, {}
    for name in policies:
        queue = queue_for(name, stream, scoring, detector.label, detector.urgency)
        waits[name] = simulate(stream, scenario.room.readers, queue)
        results[name] = policy_summary(stream, waits[name], scoring)
    if plot_to is not None:
        routine = stream.priority == PriorityClass.ROUTINE.value
        groups = {n: {"critical": w[stream.critical], "routine": w[routine]} for n, w in waits.items()}
        plot.draw(groups, plot_to, f"{len(stream)} studies, {scenario.room.readers} readers: wait until read")
    return {
        "studies": len(stream),
        "days": round(float(stream.minute.max() / 1440), 2) if len(stream) else 0,
        "offered_load": round(offered_load(stream, scenario.room.readers), 3),
        "flagged_share": round(float(np.mean(stream.flagged)), 4),
        "policies": results,
        "comparison": comparison(results),
    }
