"""AI status per worklist item, on SQLite and PostgreSQL: a failed or refused analysis never reads as negative,
the SQL status equals the per-model summary, and the list filters by it (REST and snapshot alike)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import Engine, insert, select

from dicomnode.api.app import create_app
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import Job, Result, Study
from dicomnode.catalog.states import JobState
from dicomnode.config.settings import Settings
from dicomnode.worklist import ai_status, items
from dicomnode.worklist.ai_status import AIStatus
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS
from tests.support.worklist_data import add_study, flag, workitem_of

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


def _job(conn, study: int, model: str, state: JobState, error: str | None = None, found: float | None = None) -> None:  # noqa: ANN001
    now = utcnow()
    job = conn.execute(
        insert(Job.__table__).values(
            study_fk=study,
            model=model,
            queue="dicomnode.ct",
            priority=6,
            series_uids=[],
            destinations=[],
            rules=[],
            state=state,
            generation=1,
            attempts=1,
            last_error=error,
            created_at=now,
            not_before=now,
            model_version="1.0" if state == JobState.DONE else None,
        )
    ).inserted_primary_key[0]
    if found is not None:
        conn.execute(
            insert(Result.__table__).values(
                result_uid=f"2.25.{study}{len(model)}",
                study_fk=study,
                job_fk=job,
                model=model,
                model_version="1.0",
                model_uid="2.25.1",
                findings=[],
                max_probability=found,
                created_at=now,
                updated_at=now,
            )
        )


def _studies(any_catalog: Engine) -> dict[str, int]:
    now = utcnow()
    config = Settings(routing={"rules": []}).worklist
    with any_catalog.begin() as conn:
        pks = {
            name: add_study(conn, "ROUTINE", 5, now=now)
            for name in ("flagged", "negative", "failed", "out_of_scope", "pending", "not_analysed", "mixed")
        }
        _job(conn, pks["flagged"], "ct-hemorrhage", JobState.DONE, found=0.93)
        items.record_ai(conn, pks["flagged"], [flag("bleed", 0.93)], "ct-hemorrhage", "1.0", config, now)
        _job(conn, pks["negative"], "ct-hemorrhage", JobState.DONE, found=0.0)
        _job(conn, pks["failed"], "ct-hemorrhage", JobState.FAILED, "StudyUnreadable: 28 slices are not one stack")
        _job(conn, pks["out_of_scope"], "ct-hemorrhage", JobState.OUT_OF_SCOPE, "model accepts CT; series are DX")
        _job(conn, pks["pending"], "ct-hemorrhage", JobState.RUNNING)
        # one model found nothing, the other failed: the study must not read as negative
        _job(conn, pks["mixed"], "ct-hemorrhage", JobState.DONE, found=0.0)
        _job(conn, pks["mixed"], "ct-other", JobState.FAILED, "OSError: disk")
    return pks


def test_each_study_gets_the_status_its_jobs_say(any_catalog: Engine) -> None:
    pks = _studies(any_catalog)
    expected = {name: AIStatus(name) for name in pks if name != "mixed"} | {"mixed": AIStatus.FAILED}
    with any_catalog.connect() as conn:
        rows = dict(conn.execute(select(Study.id, ai_status.status_of(Study.__table__.c.id))).all())
        models = {name: ai_status.per_model(conn, pk) for name, pk in pks.items()}
    for name, pk in pks.items():
        assert rows[pk] == expected[name], name
        assert ai_status.summary(models[name]) == expected[name], name
    failed = next(m for m in models["mixed"] if m.model == "ct-other")
    assert failed.status == AIStatus.FAILED and failed.reason == "OSError: disk"
    assert [m.status for m in models["not_analysed"]] == []


def test_the_list_shows_and_filters_by_ai_status(tmp_path: Path) -> None:
    any_catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")  # a file: the app reads from its threads
    pks = _studies(any_catalog)
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    client = TestClient(create_app(settings, any_catalog, WorklistWatcher(any_catalog, settings.worklist)))
    listed = client.get("/api/worklist", headers=ADA).json()["items"]
    by_study = {i["study_instance_uid"]: i["ai_status"] for i in listed}
    with any_catalog.connect() as conn:
        uids = dict(conn.execute(select(Study.id, Study.study_instance_uid)).all())
        workitem = workitem_of(conn, pks["failed"])
    assert by_study[uids[pks["failed"]]] == "failed" and by_study[uids[pks["negative"]]] == "negative"
    assert by_study[uids[pks["out_of_scope"]]] == "out_of_scope" and by_study[uids[pks["pending"]]] == "pending"
    only_failed = client.get("/api/worklist", params={"ai_status": "failed"}, headers=ADA).json()
    assert {i["study_instance_uid"] for i in only_failed["items"]} == {uids[pks["failed"]], uids[pks["mixed"]]}
    assert client.get("/api/worklist", params={"ai_status": "bogus"}, headers=ADA).status_code == 422
    one = client.get(f"/api/worklist/{workitem}", headers=ADA).json()
    assert one["ai_status"] == "failed" and one["ai"][0]["reason"].startswith("StudyUnreadable")
    closed = client.get("/api/worklist", params={"ai_status": "negative", "state": "completed"}, headers=ADA).json()
    assert closed["items"] == []
