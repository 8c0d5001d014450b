"""The router: at a study's completion, plan its jobs from what the catalog knows of its series and write the job
rows in the completion's own transaction."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import Connection, select, update

from dicomnode.assembly.hooks import CompletedStudy
from dicomnode.catalog.records import requested_priority
from dicomnode.catalog.schema import Instance, Series, Study
from dicomnode.catalog.states import StudyAnalysis
from dicomnode.config.routing import RoutingRule
from dicomnode.jobs import lifecycle as jobs
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from dicomnode.routing.rules import SeriesFacts, norm, plan
from models.registry import Registry

log = logging.getLogger(__name__)
_series = Series.__table__
_instances = Instance.__table__
_studies = Study.__table__


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
        )
        .join(_instances, _instances.c.series_fk == _series.c.id)
        .where(_series.c.study_fk == study_pk)
        .distinct()
        .order_by(_series.c.series_instance_uid)
    ).all()
    by_uid: dict[str, SeriesFacts] = {}
    for uid, modality, body_part, description, sop_class, calling, called in rows:
        facts = by_uid.setdefault(uid, SeriesFacts(uid, norm(modality), norm(body_part), description or ""))
        facts.sop_classes.add(sop_class)
        facts.calling_aes.add(calling.strip())
        facts.called_aes.add(called.strip())
    return list(by_uid.values())


class Router:
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
        priority = self._priority_of(requested_priority(conn, study.study_pk))
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
            study.study_instance_uid,
            priority.name,
            ",".join(j.model for j in planned),
        )

    def after_commit(self, study: CompletedStudy) -> None:
        self._on_jobs_committed()
