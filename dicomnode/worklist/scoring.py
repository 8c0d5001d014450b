"""How the worklist ranks studies: clinical class, AI urgency, waiting time, and a hard bound on waiting.

    score = class weight + ai_weight * max(probability * urgency over flagged findings) + aging * minutes waited

An item that has waited longer than its class's maximum is *overdue*: it goes above every item that is not,
the longest overdue first, so no routine study starves however many urgent ones arrive. The AI only moves
items; it never removes, completes or hides one. Every ranked item carries a plain explanation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dicomnode.routing.priority import PriorityClass


class ScoringPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    class_weight: dict[str, float] = Field(
        default_factory=lambda: {"STAT": 100.0, "HIGH": 60.0, "ROUTINE": 30.0, "LOW": 10.0},
        description="Points for the order's priority class.",
    )
    ai_weight: float = Field(80.0, ge=0, description="Points for a flagged finding of probability 1 and urgency 1.")
    aging_per_minute: float = Field(0.25, ge=0, description="Points per minute waited.")
    max_wait_minutes: dict[str, float] = Field(
        default_factory=lambda: {"STAT": 30.0, "HIGH": 60.0, "ROUTINE": 240.0, "LOW": 720.0},
        description="After this long an item goes to the top (starvation bound).",
    )

    def weight(self, cls: PriorityClass) -> float:
        return self.class_weight.get(cls.name, 0.0)

    def max_wait(self, cls: PriorityClass) -> float:
        return self.max_wait_minutes.get(cls.name, float("inf"))


@dataclass(frozen=True)
class AIFlag:
    """A flagged finding as the worklist sees it."""

    label: str
    probability: float  # calibrated
    urgency: float  # 0..1, from the model's manifest
    model: str
    model_version: str


@dataclass(frozen=True)
class WorkItem:
    key: str  # the study's identity on the worklist
    priority: PriorityClass
    arrived_at: datetime
    flags: tuple[AIFlag, ...] = ()


@dataclass(frozen=True)
class Ranked:
    item: WorkItem
    rank: int  # 1 is read first
    score: float
    overdue_minutes: float  # > 0: past its class's maximum wait
    explanation: str
    parts: dict[str, float] = field(default_factory=dict)


_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Standing:
    """What an item's place in the urgency order depends on, fixed when it is listed. Every waiting item gains the
    same points per minute, so items not overdue keep their order while they wait: by `base`, the score less the
    waiting points counted from a fixed epoch. Once past its `deadline` (arrival + its class's maximum wait; None
    without one) an item goes above every item that is not, the earliest deadline (longest overdue) first."""

    deadline: datetime | None
    base: float

    def overdue(self, now: datetime) -> bool:
        return self.deadline is not None and self.deadline < now


def standing(item: WorkItem, policy: ScoringPolicy) -> Standing:
    top = _top_flag(item)
    epoch = _EPOCH if item.arrived_at.tzinfo else _EPOCH.replace(tzinfo=None)  # the catalog's times are naive UTC
    since_epoch = (item.arrived_at - epoch).total_seconds() / 60
    base = policy.weight(item.priority) + _ai_points(top, policy) - policy.aging_per_minute * since_epoch
    bound = policy.max_wait(item.priority)
    return Standing(item.arrived_at + timedelta(minutes=bound) if math.isfinite(bound) else None, base)


def reading_order(item: WorkItem, now: datetime, policy: ScoringPolicy) -> tuple:
    """The urgency order's sort key: overdue first (longest overdue first), then by score, then first come. The
    triage simulator keeps the same order in heaps of Standing."""
    s = standing(item, policy)
    late = s.overdue(now)
    return (not late, s.deadline if late else now, -s.base, item.arrived_at, item.key)


def rank(
    items: Iterable[WorkItem], now: datetime, policy: ScoringPolicy, order: Literal["urgency", "arrival"] = "urgency"
) -> list[Ranked]:
    """Items in reading order. `arrival`: first come, first served (what a reader may switch to)."""
    scored = [assess(item, now, policy) for item in items]
    if order == "arrival":
        scored.sort(key=lambda r: (r.item.arrived_at, r.item.key))
    else:
        scored.sort(key=lambda r: reading_order(r.item, now, policy))
    return [Ranked(r.item, i, r.score, r.overdue_minutes, r.explanation, r.parts) for i, r in enumerate(scored, 1)]


def _top_flag(item: WorkItem) -> AIFlag | None:
    return max(item.flags, key=lambda f: f.probability * f.urgency, default=None)


def _ai_points(top: AIFlag | None, policy: ScoringPolicy) -> float:
    return policy.ai_weight * top.probability * top.urgency if top else 0.0


def assess(item: WorkItem, now: datetime, policy: ScoringPolicy) -> Ranked:
    """One item's score, overdue minutes and explanation (rank 0: ranking needs the others)."""
    waited = max(0.0, (now - item.arrived_at).total_seconds() / 60)
    top = _top_flag(item)
    parts = {
        "class": policy.weight(item.priority),
        "ai": _ai_points(top, policy),
        "waiting": policy.aging_per_minute * waited,
    }
    overdue = waited - policy.max_wait(item.priority)
    reasons = []
    if overdue > 0:
        reasons.append(
            f"overdue: waiting {waited:.0f} min, limit {policy.max_wait(item.priority):.0f} min for "
            f"{item.priority.name}"
        )
    if top:
        reasons.append(f"AI: {top.label} p={top.probability:.2f} ({top.model} {top.model_version})")
    reasons.append(f"{item.priority.name} order")
    if overdue <= 0:
        reasons.append(f"waiting {waited:.0f} min")
    return Ranked(item, 0, sum(parts.values()), max(overdue, 0.0), "; ".join(reasons), parts)
