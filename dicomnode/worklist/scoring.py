"""How the worklist ranks studies: clinical class, AI urgency, waiting time, and a hard bound on waiting.

    score = class weight + ai_weight * max(probability * urgency over flagged findings) + aging * minutes waited

An item that has waited longer than its class's maximum is *overdue*: it goes above every item that is not,
the longest overdue first, so no routine study starves however many urgent ones arrive. The AI only moves
items; it never removes, completes or hides one. Every ranked item carries a plain explanation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
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


def rank(
    items: Iterable[WorkItem], now: datetime, policy: ScoringPolicy, order: Literal["urgency", "arrival"] = "urgency"
) -> list[Ranked]:
    """Items in reading order. `arrival`: first come, first served (what a reader may switch to)."""
    scored = [assess(item, now, policy) for item in items]
    if order == "arrival":
        scored.sort(key=lambda r: (r.item.arrived_at, r.item.key))
    else:  # overdue first (longest overdue first), then by score, then first come
        scored.sort(key=lambda r: (r.overdue_minutes <= 0, -r.overdue_minutes, -r.score, r.item.arrived_at, r.item.key))
    return [Ranked(r.item, i, r.score, r.overdue_minutes, r.explanation, r.parts) for i, r in enumerate(scored, 1)]


def assess(item: WorkItem, now: datetime, policy: ScoringPolicy) -> Ranked:
    """One item's score, overdue minutes and explanation (rank 0: ranking needs the others)."""
    waited = max(0.0, (now - item.arrived_at).total_seconds() / 60)
    top = max(item.flags, key=lambda f: f.probability * f.urgency, default=None)
    parts = {
        "class": policy.weight(item.priority),
        "ai": policy.ai_weight * top.probability * top.urgency if top else 0.0,
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
