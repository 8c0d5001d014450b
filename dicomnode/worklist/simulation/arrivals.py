"""The studies a simulated reading room receives: synthetic (rates, day profile, prevalence) or from a CSV, each
with its read time and what the model would say of it. Arrays, not objects: a month of a busy hospital is 30,000
studies and every policy reads the same ones (same arrivals, read times and model output)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from scipy.stats import norm
from sqlalchemy import Connection, select

from dicomnode.catalog.schema import Feedback, WorkItem
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from dicomnode.worklist.simulation.scenario import CLASSES, Scenario

TRUTHS = {"1": True, "true": True, "yes": True, "critical": True, "0": False, "false": False, "no": False, "": None}


class ArrivalsError(ValueError):
    """A CSV of arrivals that cannot be simulated: says which line and why."""


@dataclass(frozen=True)
class Stream:
    minute: np.ndarray  # float, minutes from the start, ascending
    priority: np.ndarray  # int, PriorityClass values
    modality: np.ndarray  # str
    critical: np.ndarray  # bool; unknown truth counts as not critical
    read_minutes: np.ndarray  # float
    probability: np.ndarray  # float: the flag's calibrated probability, NaN where the model flags nothing
    urgency: np.ndarray | None = None  # per study (a replay's flags carry their own); None: the detector's

    def __len__(self) -> int:
        return len(self.minute)

    @property
    def flagged(self) -> np.ndarray:
        return ~np.isnan(self.probability)


def synthetic(scenario: Scenario) -> Stream:
    """Poisson arrivals per class, hour by hour at rate x day profile."""
    arrivals_rng, read_rng, model_rng = _streams(scenario.seed)
    a = scenario.arrivals
    hours = int(np.ceil(a.days * 24))
    minutes, priorities = [], []
    for name, rate in a.rate_per_hour.items():
        per_hour = rate * np.array([a.day_profile[h % 24] for h in range(hours)])
        counts = arrivals_rng.poisson(per_hour)
        starts = np.repeat(np.arange(hours) * 60.0, counts)
        minutes.append(starts + arrivals_rng.uniform(0, 60, counts.sum()))
        priorities.append(np.full(counts.sum(), PriorityClass[name].value))
    minute = np.concatenate(minutes)
    keep = minute < a.days * 24 * 60
    order = np.argsort(minute[keep], kind="stable")
    minute, priority = minute[keep][order], np.concatenate(priorities)[keep][order]
    names = list(a.modality_mix)
    shares = np.array([a.modality_mix[m] for m in names], dtype=float)
    modality = np.array(names)[arrivals_rng.choice(len(names), size=len(minute), p=shares / shares.sum())]
    critical = arrivals_rng.random(len(minute)) < a.prevalence
    return _complete(scenario, minute, priority, modality, critical, read_rng, model_rng)


def from_csv(path: Path, scenario: Scenario) -> Stream:
    """Columns `time` (ISO 8601, or minutes from the start), `modality`, `order_class` (STAT, HIGH, ROUTINE,
    MEDIUM, LOW), `truth` (1/0, critical, empty when unknown). Read times and the model's output are drawn from
    the scenario."""
    times: list[float] = []
    priorities, modalities, truths = [], [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"time", "modality", "order_class"} - set(reader.fieldnames or [])
        if missing:
            raise ArrivalsError(f"{path.name}: missing column(s) {', '.join(sorted(missing))}")
        first: datetime | None = None
        for line, row in enumerate(reader, start=2):
            minute, first = _minutes(row["time"], line, first)
            times.append(minute)
            cls = (row["order_class"] or "").strip().upper()
            if cls not in (*CLASSES, "MEDIUM"):
                raise ArrivalsError(f"line {line}: order_class is one of {', '.join(CLASSES)}, MEDIUM")
            priorities.append(from_requested_procedure_priority(cls).value)
            modalities.append((row["modality"] or "").strip().upper() or "OT")
            truth = (row.get("truth") or "").strip().lower()
            if truth not in TRUTHS:
                raise ArrivalsError(f"line {line}: truth is 1, 0, critical or empty")
            truths.append(bool(TRUTHS[truth]))
    if not times:
        raise ArrivalsError(f"{path.name}: no arrivals")
    minute = np.array(times)
    order = np.argsort(minute, kind="stable")
    _, read_rng, model_rng = _streams(scenario.seed)
    return _complete(
        scenario,
        minute[order] - minute.min(),
        np.array(priorities)[order],
        np.array(modalities)[order],
        np.array(truths)[order],
        read_rng,
        model_rng,
    )


def from_catalog(conn: Connection, scenario: Scenario, days: float, now: datetime) -> Stream:
    """The node's own arrivals of the last `days`: each worklist item's arrival, order class, first modality and
    the AI flags it got (the top one's probability and urgency, as the worklist ranks by). Truth is what readers
    said of the flags: a study is critical when a reader agreed with one; studies nobody judged count as not."""
    items, feedback = WorkItem.__table__, Feedback.__table__
    agreed = select(feedback.c.study_fk).where(feedback.c.verdict == "agree")
    rows = conn.execute(
        select(items.c.arrived_at, items.c.priority, items.c.modalities, items.c.flags, items.c.study_fk.in_(agreed))
        .where(items.c.arrived_at >= now - timedelta(days=days), items.c.arrived_at <= now)
        .order_by(items.c.arrived_at)
    ).all()
    if not rows:
        raise ArrivalsError(f"no worklist items arrived in the last {days:g} days")
    first = rows[0].arrived_at
    minute = np.array([(r.arrived_at - first).total_seconds() / 60 for r in rows])
    priority = np.array([PriorityClass[r.priority].value for r in rows])
    modality = np.array([(r.modalities or "OT").split("\\")[0] for r in rows])
    critical = np.array([bool(r[4]) for r in rows])
    tops = [max(r.flags or [], key=lambda f: f["probability"] * f["urgency"], default=None) for r in rows]
    probability = np.array([t["probability"] if t else np.nan for t in tops])
    urgency = np.array([t["urgency"] if t else 0.0 for t in tops])
    _, read_rng, _ = _streams(scenario.seed)
    stream = _complete(scenario, minute, priority, modality, critical, read_rng, np.random.default_rng(0))
    return Stream(minute, priority, modality, critical, stream.read_minutes, probability, urgency)


def _complete(
    scenario: Scenario,
    minute: np.ndarray,
    priority: np.ndarray,
    modality: np.ndarray,
    critical: np.ndarray,
    read_rng: np.random.Generator,
    model_rng: np.random.Generator,
) -> Stream:
    room = scenario.room
    means = np.array([room.mean_read(m) for m in modality])
    sigma = np.sqrt(np.log1p(room.read_cv**2))
    reads = means * np.exp(read_rng.normal(-(sigma**2) / 2, sigma, len(minute)))  # log-normal with that mean
    return Stream(minute, priority, modality, critical, reads, _model_output(scenario, critical, model_rng))


def _model_output(scenario: Scenario, critical: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Binormal scores: N(0, 1) for negatives, N(d', 1) for criticals, flagged above the specificity's threshold;
    a flag's probability is the posterior at its score for the scenario's prevalence (calibrated)."""
    d = scenario.detector
    separation = norm.ppf(d.sensitivity) + norm.ppf(d.specificity)
    threshold = norm.ppf(d.specificity)
    score = rng.normal(0.0, 1.0, len(critical)) + separation * critical
    prevalence = min(max(scenario.arrivals.prevalence, 1e-6), 1 - 1e-6)
    odds = prevalence / (1 - prevalence) * np.exp(separation * score - separation**2 / 2)
    return np.where(score >= threshold, odds / (1 + odds), np.nan)


def _streams(seed: int) -> list[np.random.Generator]:
    """Arrivals, read times and the model each draw from their own stream of the seed."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)]


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _minutes(value: str, line: int, first: datetime | None) -> tuple[float, datetime | None]:
    """Minutes from the start, and the first ISO 8601 time met (the others are counted from it)."""
    value = (value or "").strip()
    if _is_number(value):
        if float(value) < 0 or not np.isfinite(float(value)):
            raise ArrivalsError(f"line {line}: time in minutes must be finite and >= 0")
        return float(value), first
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise ArrivalsError(f"line {line}: time is an ISO 8601 date-time or minutes from the start") from None
    if first is None:
        return 0.0, when
    if (when.tzinfo is None) != (first.tzinfo is None):
        raise ArrivalsError(f"line {line}: mixes times with and without a time zone")
    return (when - first).total_seconds() / 60, first
