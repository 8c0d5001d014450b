"""Routing rules, pure: which series of a study each rule matches, and the jobs that follow (one per model)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dicomnode.config.routing import RoutingRule, RuleMatch


@dataclass
class SeriesFacts:
    series_uid: str
    modality: str
    body_part: str
    description: str
    sop_classes: set[str] = field(default_factory=set)
    calling_aes: set[str] = field(default_factory=set)
    called_aes: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class PlannedJob:
    model: str
    series_uids: list[str]
    destinations: list[str]
    rules: list[str]


def matches(match: RuleMatch, series: SeriesFacts) -> bool:
    """Every given criterion must hold; a list criterion holds when any of its values does."""
    return (
        _any_of(match.modality, {series.modality})
        and _any_of(match.body_part, {series.body_part})
        and (not match.sop_class or bool(series.sop_classes & set(match.sop_class)))
        and (match.series_description is None or re.search(match.series_description, series.description) is not None)
        and _any_ae(match.calling_ae, series.calling_aes)
        and _any_ae(match.called_ae, series.called_aes)
    )


def plan(rules: list[RoutingRule], series: list[SeriesFacts]) -> list[PlannedJob]:
    """One job per model; several rules naming a model merge their series and destinations."""
    merged: dict[str, tuple[list[str], list[str], list[str]]] = {}
    for rule in rules:
        hits = [s.series_uid for s in series if matches(rule.match, s)]
        if not hits:
            continue
        for model in rule.models:
            uids, dests, names = merged.setdefault(model, ([], [], []))
            uids.extend(u for u in hits if u not in uids)
            dests.extend(d for d in rule.destinations if d not in dests)
            names.append(rule.name)
    return [PlannedJob(model, *parts) for model, parts in merged.items()]


def norm(value: str | None) -> str:
    return (value or "").strip().upper()


def _any_of(wanted: list[str], have: set[str]) -> bool:
    return not wanted or bool({norm(w) for w in wanted} & have)


def _any_ae(wanted: list[str], have: set[str]) -> bool:
    return not wanted or bool({w.strip() for w in wanted} & have)
