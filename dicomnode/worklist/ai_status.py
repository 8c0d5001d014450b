"""What the AI said about a study, in one word a reader can trust: never "nothing found" unless a model ran to
the end and found nothing.

Per model (its job and, once done, its result): pending (waiting or running), flagged (a finding), negative
(analysed, nothing found), failed (after the last attempt, or at once when the study cannot be read as stored),
out_of_scope (the scope gate refused it). For the study: the most telling of its models' statuses, or
not_analysed when no rule or model took it. Derived from the catalog when read, so it cannot go stale.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import ColumnElement, Connection, and_, case, exists, select

from dicomnode.catalog.schema import Job, Result
from dicomnode.catalog.states import JobState

_jobs = Job.__table__
_results = Result.__table__


class AIStatus(StrEnum):
    PENDING = "pending"
    FLAGGED = "flagged"
    NEGATIVE = "negative"
    FAILED = "failed"
    OUT_OF_SCOPE = "out_of_scope"
    NOT_ANALYSED = "not_analysed"


# The study's status is the first of these that one of its models has: a finding first, then what must not
# pass for a negative, then work still to come.
PRECEDENCE = (AIStatus.FLAGGED, AIStatus.FAILED, AIStatus.OUT_OF_SCOPE, AIStatus.PENDING, AIStatus.NEGATIVE)


@dataclass(frozen=True)
class ModelStatus:
    model: str
    status: AIStatus
    model_version: str | None
    reason: str | None  # why it failed or was out of scope; None otherwise


def _result_of_job():  # noqa: ANN202
    return and_(
        _results.c.study_fk == _jobs.c.study_fk,
        _results.c.model == _jobs.c.model,
        _results.c.model_version == _jobs.c.model_version,
    )


def status_of(study_fk: ColumnElement[int]) -> ColumnElement[str]:
    """The study's AIStatus as an SQL expression, for a query that has the study's id as `study_fk`."""

    def any_job(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
        return exists().where(_jobs.c.study_fk == study_fk, *conditions)

    done = (_jobs.c.study_fk == study_fk, _jobs.c.state == JobState.DONE)
    found = exists().where(*done, _result_of_job(), _results.c.max_probability > 0)
    when = {
        AIStatus.FLAGGED: found,
        AIStatus.FAILED: any_job(_jobs.c.state == JobState.FAILED),
        AIStatus.OUT_OF_SCOPE: any_job(_jobs.c.state == JobState.OUT_OF_SCOPE),
        AIStatus.PENDING: any_job(_jobs.c.state.in_((JobState.PENDING, JobState.RUNNING))),
        AIStatus.NEGATIVE: any_job(_jobs.c.state == JobState.DONE),
    }
    return case(*[(when[s], s.value) for s in PRECEDENCE], else_=AIStatus.NOT_ANALYSED.value)


def per_model(conn: Connection, study_pk: int) -> list[ModelStatus]:
    """Each model's status for the study, by model name."""
    rows = conn.execute(
        select(_jobs.c.model, _jobs.c.state, _jobs.c.model_version, _jobs.c.last_error, _results.c.max_probability)
        .outerjoin(_results, _result_of_job())
        .where(_jobs.c.study_fk == study_pk)
        .order_by(_jobs.c.model)
    ).all()
    return [_model_status(r.model, JobState(r.state), r.model_version, r.last_error, r.max_probability) for r in rows]


def _model_status(
    model: str, state: JobState, version: str | None, error: str | None, max_probability: float | None
) -> ModelStatus:
    if state is JobState.DONE:
        found = (max_probability or 0) > 0
        return ModelStatus(model, AIStatus.FLAGGED if found else AIStatus.NEGATIVE, version, None)
    if state is JobState.FAILED:
        return ModelStatus(model, AIStatus.FAILED, version, error)
    if state is JobState.OUT_OF_SCOPE:
        return ModelStatus(model, AIStatus.OUT_OF_SCOPE, version, error)
    return ModelStatus(model, AIStatus.PENDING, version, None)


def summary(models: list[ModelStatus]) -> AIStatus:
    """The study's status from its models' (the same rule as status_of)."""
    have = {m.status for m in models}
    return next((s for s in PRECEDENCE if s in have), AIStatus.NOT_ANALYSED)
