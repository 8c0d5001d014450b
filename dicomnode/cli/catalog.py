"""What the catalog holds: studies, analysis jobs (and retrying a failed one), the audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomnode.catalog.states import JobState
from dicomnode.cli.render import Column, ConfigOption, JsonOption, WideOption, catalog_of, emit, fail, settings_from


def studies(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N studies")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List the studies the catalog holds."""
    from dicomnode.catalog.records import list_studies

    rows = list_studies(catalog_of(settings_from(config)), limit)
    emit(
        rows,
        [
            Column("study UID", lambda s: s.study_instance_uid, uid=True),
            Column("called AE", lambda s: s.called_ae),
            Column("state", lambda s: s.state),
            Column("modality", lambda s: s.modalities),
            Column("series", lambda s: s.series_count),
            Column("instances", lambda s: s.instance_count),
            Column("MB", lambda s: f"{s.size_bytes / 1e6:.1f}"),
            Column("priority", lambda s: s.requested_procedure_priority),
            Column("last received (UTC)", lambda s: s.last_received_at.isoformat(timespec="seconds")),
            Column("analysis", lambda s: s.analysis),
        ],
        as_json,
        wide=wide,
    )


def jobs(
    config: ConfigOption = None,
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N jobs")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List analysis jobs: state, attempts, last error, timings."""
    from dataclasses import asdict

    from dicomnode.jobs.lifecycle import list_jobs
    from dicomnode.routing.priority import PriorityClass

    rows = list_jobs(catalog_of(settings_from(config)), state, limit)
    emit(
        rows,
        [
            Column("job", lambda j: j.id),
            Column("study UID", lambda j: j.study_instance_uid, uid=True),
            Column("model", lambda j: j.model),
            Column("state", lambda j: j.state),
            Column("priority", lambda j: PriorityClass(j.priority).name),
            Column("attempts", lambda j: j.attempts),
            Column("created (UTC)", lambda j: j.created_at.isoformat(timespec="seconds")),
            Column("total s", lambda j: f"{j.timings['total_s']:.2f}" if j.timings else ""),
            Column("last error", lambda j: j.last_error),
        ],
        as_json,
        as_dict=lambda j: {**asdict(j), "priority": PriorityClass(j.priority).name},
        wide=wide,
    )


def retry(job_id: int, config: ConfigOption = None) -> None:
    """Give a failed job a fresh set of attempts (the running node publishes it)."""
    from dicomnode.jobs.lifecycle import retry_failed

    with catalog_of(settings_from(config)).begin() as conn:
        if not retry_failed(conn, job_id):
            fail(f"job {job_id} does not exist or has not failed")
    typer.echo(f"job {job_id} is pending again")


def audit(
    study_uid: Annotated[str | None, typer.Argument(help="One study's trail; omitted: the most recent acts")] = None,
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N acts (without a study UID)")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Who or what touched a study: received from, analysed by, exported to, claimed and completed by, deleted."""
    from dicomnode.ops.audit import trail

    with catalog_of(settings_from(config)).connect() as conn:
        rows = trail(conn, study_uid, limit)
    if study_uid and not rows:
        fail(f"no audit trail for study {study_uid}")
    emit(
        rows,
        [
            Column("when (UTC)", lambda r: r.at.isoformat(timespec="seconds")),
            Column("study UID", lambda r: r.study_instance_uid, uid=True),
            Column("action", lambda r: r.action),
            Column("by", lambda r: r.actor),
            Column("detail", lambda r: r.detail),
        ],
        as_json,
        as_dict=lambda r: {k: str(v) if k == "at" else v for k, v in r._mapping.items()},
        wide=wide,
    )
