"""Triage simulator benchmark: 30 days of ~1,000 studies a day (target: all four policies under 10 s), and the
simulator's queue against the obvious peer, re-ranking every waiting study with scoring.rank() at each pick (the
worklist's own code, as a reader's refresh would), on the same day of arrivals.

Usage: python bench/simulate.py [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import timedelta

import numpy as np

from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist.scoring import AIFlag, ScoringPolicy, WorkItem, rank
from dicomnode.worklist.simulation.arrivals import Stream, synthetic
from dicomnode.worklist.simulation.engine import START, queue_for, simulate
from dicomnode.worklist.simulation.run import run
from dicomnode.worklist.simulation.scenario import Arrivals, Scenario


class _RankEveryPick:
    """The peer: every pick ranks the whole queue with scoring.rank()."""

    def __init__(self, stream: Stream, policy: ScoringPolicy) -> None:
        self.stream, self.policy, self.waiting = stream, policy, {}

    def push(self, i: int) -> None:
        p = self.stream.probability[i]
        flags = () if np.isnan(p) else (AIFlag("finding", float(p), 1.0, "model", "1"),)
        arrived = START + timedelta(minutes=float(self.stream.minute[i]))
        self.waiting[i] = WorkItem(str(i), PriorityClass(int(self.stream.priority[i])), arrived, flags)

    def pop(self, now: float) -> int:
        key = int(rank(self.waiting.values(), START + timedelta(minutes=now), self.policy)[0].item.key)
        del self.waiting[key]
        return key


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    policy = ScoringPolicy()
    month = Scenario(arrivals=Arrivals(days=30, rate_per_hour={"STAT": 4.2, "HIGH": 6.2, "ROUTINE": 27.1, "LOW": 4.2}))
    started = time.perf_counter()
    stream = synthetic(month)
    out = run(stream, month, policy)
    month_s = time.perf_counter() - started

    day = Scenario(arrivals=Arrivals(days=1))
    one_day = synthetic(day)
    started = time.perf_counter()
    ours = simulate(one_day, day.room.readers, queue_for("dicomnode", one_day, policy, "finding", 1.0))
    heap_s = time.perf_counter() - started
    started = time.perf_counter()
    peer = simulate(one_day, day.room.readers, _RankEveryPick(one_day, policy))
    peer_s = time.perf_counter() - started
    assert np.allclose(ours, peer), "the simulator's queue must read studies in rank()'s order"
    figures = {
        "month_studies": len(stream),
        "month_all_policies_s": round(month_s, 2),
        "month_target_s": 10,
        "day_studies": len(one_day),
        "day_heap_s": round(heap_s, 3),
        "day_rank_every_pick_s": round(peer_s, 3),
        "speedup_vs_rank_every_pick": round(peer_s / heap_s, 1),
        "month_comparison": out["comparison"],
    }
    print(json.dumps(figures))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
