"""The worklist shows each study's own patient, as its instances named it: a second study with the same PatientID
and another name never relabels the first, and both carry a visible identity-conflict mark."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from dicomnode.api.app import create_app
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.records import Receipt, record_instance
from dicomnode.catalog.schema import Study
from dicomnode.config.settings import Settings
from dicomnode.worklist import items
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS
from tests.support.instances import header

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


def test_each_study_keeps_its_own_patient_and_conflicts_are_marked(tmp_path: Path) -> None:
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    people = {
        "1.2.40.1": ("P1", "Doe^Jane", "19700101"),
        "1.2.40.2": ("P1", "Roe^Janet", "19700101"),  # same ID, another name: a mix-up to show, not to hide
        "1.2.40.3": ("P2", "Smith^Bob", "19800202"),
        "1.2.40.4": ("P2", "Smith^Bob", "19800202"),  # same patient, same name: no conflict
    }
    with catalog.begin() as conn:
        for study, (pid, name, born) in people.items():
            for k in (1, 2):
                # the second instance lacks the name: the study keeps what its first instance said
                h = replace(
                    header(f"{study}.1.{k}", study=study),
                    patient_id=pid,
                    patient_name=name if k == 1 else None,
                    birth_date=born,
                )
                record_instance(
                    conn,
                    h,
                    Receipt("CT1", "DICOMNODE", "127.0.0.1", "1.2.840.10008.1.2.1", utcnow()),
                    f"{study}/{k}.dcm",
                    1,
                )
        for pk in conn.execute(select(Study.id)).scalars():
            items.enlist(conn, pk, settings.worklist)
    client = TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist)))
    listed = {i["study_instance_uid"]: i for i in client.get("/api/worklist", headers=ADA).json()["items"]}
    for study, (pid, name, born) in people.items():
        assert (listed[study]["patient_id"], listed[study]["patient_name"]) == (pid, name), study
        assert listed[study]["patient_birth_date"] == born
    assert listed["1.2.40.1"]["identity_conflict"] and listed["1.2.40.2"]["identity_conflict"]
    assert not listed["1.2.40.3"]["identity_conflict"] and not listed["1.2.40.4"]["identity_conflict"]
    ups = client.get(f"/workitems/{listed['1.2.40.1']['uid']}", headers=ADA).json()[0]
    assert ups["00100010"]["Value"][0]["Alphabetic"] == "Doe^Jane"
