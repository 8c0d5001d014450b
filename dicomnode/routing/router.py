"""Routing: which models run on a completed study, decided from what the catalog knows of its series."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, select, update

from dicomnode.assembly.hooks import CompletedStudy
from dicomnode.catalog.schema import Instance, Series, Study, StudyAnalysis
from dicomnode.config.settings import RoutingRule, RuleMatch
from dicomnode.jobs import lifecycle as jobs
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from models.registry import Registry

log = logging.getLogger(__name__)
_series = Series.__table__
_instances = Instance.__table__
_studies = Study.__table__


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


def series_facts(conn: Connection, study_pk: int) -> list[SeriesFacts]:
    rows = conn.execute(
        select(
            _series.c.series_instance_uid,
            _series.c.modality,
            _series.c.body_part_examined,
            _series.c.series_description,
            _instances.c.sop_class_uid,
            _instances.c.calling_ae,
            _instances.c.called_ae,
        )  # fmt: skip
        .join(_instances, _instances.c.series_fk == _series.c.id)
        .where(_series.c.study_fk == study_pk)
        .distinct()
        .order_by(_series.c.series_instance_uid)
    ).all()
    by_uid: dict[str, SeriesFacts] = {}
    for uid, modality, body_part, description, sop_class, calling, called in rows:
        facts = by_uid.setdefault(uid, SeriesFacts(uid, _norm(modality), _norm(body_part), description or ""))
        facts.sop_classes.add(sop_class)
        facts.calling_aes.add(calling.strip())
        facts.called_aes.add(called.strip())
    return list(by_uid.values())


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


class RoutingDispatcher:
    """Turns a study completion into job rows, in the completion's own transaction."""

    def __init__(
        self,
        rules: list[RoutingRule],
        registry: Registry,
        on_jobs_committed: Callable[[], None],
        priority_of: Callable[[str | None], PriorityClass] = from_requested_procedure_priority,
    ) -> None:
        self._rules = rules
        self._priority_of = priority_of
        self._registry = registry
        self._on_jobs_committed = on_jobs_committed

    def study_completed(self, conn: Connection, study: CompletedStudy) -> None:
        planned = plan(self._rules, series_facts(conn, study.study_pk))
        outcome = StudyAnalysis.ROUTED if planned else StudyAnalysis.NO_RULE
        conn.execute(update(_studies).where(_studies.c.id == study.study_pk).values(analysis=outcome))
        if not planned:
            log.info("study complete study=%s: no routing rule matched, not analysed", study.study_instance_uid)
            return
        order_priority = conn.execute(
            select(_studies.c.requested_procedure_priority).where(_studies.c.id == study.study_pk)
        ).scalar_one()
        priority = self._priority_of(order_priority)
        for job in planned:
            jobs.upsert_job(
                conn,
                study_pk=study.study_pk,
                generation=study.completion_count,
                model=job.model,
                queue=jobs.queue_for(self._registry.get(job.model).family),
                priority=int(priority),
                series_uids=job.series_uids,
                destinations=job.destinations,
                rules=job.rules,
            )
        log.info(
            "study complete study=%s priority=%s jobs=%s",
            study.study_instance_uid, priority.name, ",".join(j.model for j in planned),
        )  # fmt: skip

    def after_commit(self, study: CompletedStudy) -> None:
        self._on_jobs_committed()


def _norm(value: str | None) -> str:
    return (value or "").strip().upper()


def _any_of(wanted: list[str], have: set[str]) -> bool:
    return not wanted or bool({_norm(w) for w in wanted} & have)


def _any_ae(wanted: list[str], have: set[str]) -> bool:
    return not wanted or bool({w.strip() for w in wanted} & have)
