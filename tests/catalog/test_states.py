"""The state tables: complete, closed over their own enum, enforced by require_move, and obeyed by the job and
outbox transitions as they really run on the catalog."""

from __future__ import annotations

from enum import StrEnum

import pytest
from sqlalchemy import Engine, select

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.records import Receipt, record_instance
from dicomnode.catalog.schema import Export, Job, Study
from dicomnode.catalog.states import (
    JOB_MOVES,
    OUTBOX_MOVES,
    STUDY_MOVES,
    WORKITEM_MOVES,
    IllegalMove,
    JobState,
    OutboxState,
    StudyState,
    WorkItemState,
    require_move,
    sources,
)
from dicomnode.config.analysis import AnalysisConfig
from dicomnode.config.export import ExportConfig, ResultKind
from dicomnode.export import dicom as dicom_export
from dicomnode.jobs import lifecycle as jobs
from dicomnode.receive.header import InstanceHeader
from dicomnode.results.store import StoredInstance
from tests.support.instances import header

TABLES = [
    (StudyState, STUDY_MOVES),
    (JobState, JOB_MOVES),
    (OutboxState, OUTBOX_MOVES),
    (WorkItemState, WORKITEM_MOVES),
]


@pytest.mark.parametrize(("enum", "moves"), TABLES)
def test_every_state_has_a_row_and_moves_stay_in_the_enum(enum: type[StrEnum], moves: dict) -> None:
    assert set(moves) == set(enum)
    for old, targets in moves.items():
        assert all(isinstance(t, enum) for t in targets) and old not in targets


def test_require_move_refuses_what_the_table_does_not_allow() -> None:
    require_move(WORKITEM_MOVES, "SCHEDULED", WorkItemState.IN_PROGRESS)
    with pytest.raises(IllegalMove, match="COMPLETED -> SCHEDULED"):
        require_move(WORKITEM_MOVES, "COMPLETED", WorkItemState.SCHEDULED)
    assert sources(JOB_MOVES, JobState.RUNNING) == (JobState.PENDING,)
    assert set(sources(OUTBOX_MOVES, OutboxState.PENDING)) == {OutboxState.SENDING, OutboxState.SENT, OutboxState.DEAD}


def _study(catalog: Engine, uid: str) -> int:
    h: InstanceHeader = header(uid + ".1.1", study=uid)
    with catalog.begin() as conn:
        record_instance(conn, h, Receipt("CT1", "DICOMNODE", "127.0.0.1", "1.2.840.10008.1.2.1", utcnow()), "x", 1)
        return conn.execute(select(Study.__table__.c.id)).scalar_one()


def test_job_and_outbox_runs_move_only_along_their_tables(any_catalog: Engine) -> None:
    pk = _study(any_catalog, "1.2.9")
    policy = AnalysisConfig(max_attempts=2)
    seen: list[tuple[str, str]] = []

    def job_state() -> str:
        with any_catalog.connect() as conn:
            return conn.execute(select(Job.__table__.c.state)).scalar_one()

    with any_catalog.begin() as conn:
        jobs.upsert_job(
            conn,
            study_pk=pk,
            generation=1,
            model="m",
            queue="dicomnode.ct",
            priority=6,
            series_uids=["1.2.9.1"],
            destinations=["PACS@127.0.0.1:104"],
            rules=["r"],
        )
    with any_catalog.connect() as conn:
        [due] = jobs.due_unpublished(conn)
    job_id = due.job_id
    before = job_state()
    for step in ("claim", "error", "claim", "finish"):
        with any_catalog.begin() as conn:
            if step == "claim":
                claim = jobs.claim(conn, job_id, "w")
                if claim is None:  # the backoff: made due at once, as the scheduler would wait for it
                    conn.execute(Job.__table__.update().values(not_before=Job.__table__.c.created_at))
                    claim = jobs.claim(conn, job_id, "w")
            elif step == "error":
                jobs.record_error(conn, claim, "OSError", False, policy)
            else:
                jobs.finish(conn, claim, "1", {})
        after = job_state()
        seen.append((before, after))
        before = after
    assert seen == [("pending", "running"), ("running", "pending"), ("pending", "running"), ("running", "done")]
    for old, new in seen:
        require_move(JOB_MOVES, old, JobState(new))

    with any_catalog.begin() as conn:
        sr = StoredInstance("1.2.9.9", "x/y.dcm", ResultKind.SR)
        dicom_export.enqueue(conn, pk, "2.25.1", [sr], ["PACS@127.0.0.1:104"], lambda _: {ResultKind.SR})
        [send] = dicom_export.claim_due(conn)
        dicom_export.record_failure(conn, send, "down", None, ExportConfig(max_attempts=1))
    with any_catalog.connect() as conn:
        final = conn.execute(select(Export.__table__.c.state)).scalar_one()
    assert final == OutboxState.DEAD
    require_move(OUTBOX_MOVES, OutboxState.PENDING, OutboxState.SENDING)
    require_move(OUTBOX_MOVES, OutboxState.SENDING, OutboxState(final))
