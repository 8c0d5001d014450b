"""Undoing a completion (its reader, within a minute, recorded) and searching the list by patient name, patient
ID, accession number or study date, over the REST API and a real catalog."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import update

from dicomnode.api.app import create_app
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import Study, WorkItem
from dicomnode.config.settings import Settings
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS
from tests.support.worklist_data import add_study, workitem_of

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
BOB = {"Authorization": f"Bearer {READERS[1]['token']}"}


def _client(tmp_path: Path):  # noqa: ANN202
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    return catalog, TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist)))


def test_a_completion_can_be_undone_by_its_reader_within_a_minute(tmp_path: Path) -> None:
    catalog, client = _client(tmp_path)
    with catalog.begin() as conn:
        uid = workitem_of(conn, add_study(conn, "ROUTINE", 5, now=utcnow()))
    assert client.post(f"/api/worklist/{uid}/claim", headers=ADA).status_code == 200
    assert client.post(f"/api/worklist/{uid}/complete", headers=ADA).status_code == 200
    assert client.post(f"/api/worklist/{uid}/reopen", headers=BOB).status_code == 409, "only its reader"
    assert client.post(f"/api/worklist/{uid}/reopen", headers=ADA).status_code == 200
    item = client.get(f"/api/worklist/{uid}", headers=ADA).json()
    assert item["state"] == "IN PROGRESS" and item["claimed_by"] == "dr-ada" and item["rank"] == 1
    assert [e["event"] for e in item["history"]][-2:] == ["completed", "reopened"]
    assert client.post(f"/api/worklist/{uid}/complete", headers=ADA).status_code == 200
    with catalog.begin() as conn:  # the minute passes
        conn.execute(update(WorkItem).values(closed_at=utcnow() - timedelta(seconds=61)))
    late = client.post(f"/api/worklist/{uid}/reopen", headers=ADA)
    assert late.status_code == 409 and "60 seconds" in late.json()["detail"]
    assert client.get(f"/api/worklist/{uid}", headers=ADA).json()["state"] == "COMPLETED"


def test_search_by_name_id_accession_or_date(tmp_path: Path) -> None:
    catalog, client = _client(tmp_path)
    now = utcnow()
    with catalog.begin() as conn:
        pks = [add_study(conn, "ROUTINE", m, now=now) for m in (1, 2, 3)]
        conn.execute(update(Study).where(Study.id == pks[2]).values(study_date="20261122"))
    listed = {i["accession_number"]: i for i in client.get("/api/worklist", headers=ADA).json()["items"]}
    first = next(iter(listed.values()))
    number = first["patient_name"].split("Patient")[1]

    def found(q: str, **params: str) -> set[str]:
        return {
            i["accession_number"]
            for i in client.get("/api/worklist", params={"q": q, **params}, headers=ADA).json()["items"]
        }

    assert found(f"patient{number} test") == {first["accession_number"]}, "every word of the name, any case"
    assert found(first["patient_id"]) == {first["accession_number"]}
    assert found(first["accession_number"]) == {first["accession_number"]}
    assert len(found("2026-11-22")) == 1 and found("2026-11-22") == found("20261122")
    assert found("nobody at all") == set()
    assert found(first["accession_number"], state="completed") == set()
