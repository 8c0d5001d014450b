"""The reading room as a discrete-event simulation: readers free up, each takes the next study by the policy's
order, reads it for its read time. Policies: first come first served, order class only, and the node's own
scoring (dicomnode.worklist.scoring: the same Standing its worklist ranks by), with and without its maximum waits."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import numpy as np

from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist.scoring import AIFlag, ScoringPolicy, WorkItem, standing
from dicomnode.worklist.simulation.arrivals import Stream

POLICIES = ("fifo", "class_priority", "dicomnode", "dicomnode_unbounded")
START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday, midnight; only differences matter


class _Queue:
    def push(self, i: int) -> None: ...
    def pop(self, now: float) -> int: ...


class _Fifo(_Queue):
    def __init__(self, stream: Stream) -> None:
        self.heap: list[int] = []  # arrivals come in time order: the index is the order

    def push(self, i: int) -> None:
        heapq.heappush(self.heap, i)

    def pop(self, now: float) -> int:
        return heapq.heappop(self.heap)


class _ClassPriority(_Queue):
    def __init__(self, stream: Stream) -> None:
        self.stream, self.heap = stream, []

    def push(self, i: int) -> None:
        heapq.heappush(self.heap, (int(self.stream.priority[i]), i))

    def pop(self, now: float) -> int:
        return heapq.heappop(self.heap)[1]


class _Scored(_Queue):
    """scoring.reading_order kept in two heaps: by deadline (for the overdue) and by base score (for the rest)."""

    def __init__(self, stream: Stream, policy: ScoringPolicy, label: str, urgency: float) -> None:
        self.stream, self.policy, self.label, self.urgency = stream, policy, label, urgency
        self.by_deadline: list[tuple] = []
        self.by_score: list[tuple] = []
        self.taken: set[int] = set()

    def push(self, i: int) -> None:
        s = standing(self._item(i), self.policy)
        minute = float(self.stream.minute[i])
        if s.deadline is not None:
            deadline = (s.deadline - START).total_seconds() / 60
            heapq.heappush(self.by_deadline, (deadline, -s.base, minute, i))
        heapq.heappush(self.by_score, (-s.base, minute, i))

    def pop(self, now: float) -> int:
        for heap in (self.by_deadline, self.by_score):
            while heap and heap[0][-1] in self.taken:
                heapq.heappop(heap)
        if self.by_deadline and self.by_deadline[0][0] < now:
            i = heapq.heappop(self.by_deadline)[-1]
        else:
            i = heapq.heappop(self.by_score)[-1]
        self.taken.add(i)
        return i

    def _item(self, i: int) -> WorkItem:
        probability = self.stream.probability[i]
        urgency = self.urgency if self.stream.urgency is None else float(self.stream.urgency[i])
        flags = () if np.isnan(probability) else (AIFlag(self.label, float(probability), urgency, "model", "1"),)
        arrived = START + timedelta(minutes=float(self.stream.minute[i]))
        return WorkItem(str(i), PriorityClass(int(self.stream.priority[i])), arrived, flags)


def queue_for(name: str, stream: Stream, policy: ScoringPolicy, label: str, urgency: float) -> _Queue:
    makers: dict[str, Callable[[], _Queue]] = {
        "fifo": lambda: _Fifo(stream),
        "class_priority": lambda: _ClassPriority(stream),
        "dicomnode": lambda: _Scored(stream, policy, label, urgency),
        "dicomnode_unbounded": lambda: _Scored(
            stream, policy.model_copy(update={"max_wait_minutes": {}}), label, urgency
        ),
    }
    if name not in makers:
        raise ValueError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}")
    return makers[name]()


def simulate(stream: Stream, readers: int, queue: _Queue) -> np.ndarray:
    """Minutes each study waited from arrival until a reader opened it."""
    n = len(stream)
    waits = np.full(n, np.nan)
    free = [0.0] * readers  # when each reader is next free
    clock, waiting, i = 0.0, 0, 0
    while i < n or waiting:
        next_arrival = stream.minute[i] if i < n else np.inf
        if waiting and free[0] <= next_arrival:
            now = max(free[0], clock)
            study = queue.pop(now)
            waiting -= 1
            waits[study] = now - stream.minute[study]
            heapq.heapreplace(free, now + float(stream.read_minutes[study]))
            clock = now
        else:
            queue.push(i)
            waiting += 1
            clock = float(next_arrival)
            i += 1
    return waits
