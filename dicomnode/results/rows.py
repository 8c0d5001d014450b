"""Catalog writes and reads for model results. One row per study + model + version, replaced on re-run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Result
from dicomnode.results.identity import ResultIdentity

_results = Result.__table__


def save_result(
    conn: Connection,
    *,
    study_pk: int,
    job_id: int,
    identity: ResultIdentity,
    findings: list[dict[str, Any]],
) -> None:
    """Write (or replace) the result under its deterministic UID. Caller commits."""
    uid, model, model_version = identity.result_uid, identity.model, identity.model_version
    now = utcnow()
    values = {
        "findings": findings,
        "max_probability": max((f["probability"] for f in findings), default=0.0),
        "job_fk": job_id,
        "model_uid": identity.model_uid,
    }
    stmt = insert_for(conn.dialect.name, _results).values(
        result_uid=uid,
        study_fk=study_pk,
        model=model,
        model_version=model_version,
        created_at=now,
        updated_at=now,
        run_count=1,
        **values,
    )
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["result_uid"],
            set_={**values, "updated_at": now, "run_count": _results.c.run_count + 1},
        )
    )
