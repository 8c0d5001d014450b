"""Reader feedback on AI flags: recorded with the reader and time, in the history and the audit trail, counted per
model version, replaced when the reader changes their mind, and never moving the rank."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client import generate_latest

from dicomnode.api.app import create_app
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.config.settings import Settings
from dicomnode.ops import audit
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.worklist import items
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS, dicomnode_cli, write_config
from tests.support.worklist_data import add_study, flag, workitem_of

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
BOB = {"Authorization": f"Bearer {READERS[1]['token']}"}


def _setup(tmp_path: Path):  # noqa: ANN202
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    now = utcnow()
    with catalog.begin() as conn:
        bleed = add_study(conn, "ROUTINE", 5, now=now)
        add_study(conn, "STAT", 1, now=now)
        items.record_ai(conn, bleed, [flag("bleed", 0.9)], "ct-hemorrhage", "0.2.0", settings.worklist, now)
        uid = workitem_of(conn, bleed)
    client = TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist)))
    return catalog, settings, client, uid


def test_feedback_is_recorded_shown_counted_and_never_moves_the_rank(tmp_path: Path) -> None:
    catalog, _, client, uid = _setup(tmp_path)
    item = client.get(f"/api/worklist/{uid}", headers=ADA).json()
    [f] = item["flags"]
    body = {"result_uid": f["result_uid"], "label": "bleed", "verdict": "disagree", "comment": "calcification"}
    stored = client.post(f"/api/worklist/{uid}/feedback", json=body, headers=ADA)
    assert stored.status_code == 200 and stored.json()["reader"] == "dr-ada"
    assert (
        client.post(
            f"/api/worklist/{uid}/feedback", json={**body, "verdict": "agree", "comment": None}, headers=BOB
        ).status_code
        == 200
    )
    # dr-ada changes her mind: her assessment is replaced, the history keeps both
    assert (
        client.post(f"/api/worklist/{uid}/feedback", json={**body, "verdict": "agree"}, headers=ADA).status_code == 200
    )
    after = client.get(f"/api/worklist/{uid}", headers=ADA).json()
    assert after["rank"] == item["rank"], "feedback never moves the item"
    assert sorted((o["reader"], o["verdict"]) for o in after["feedback"]) == [("dr-ada", "agree"), ("dr-bob", "agree")]
    events = [e for e in after["history"] if e["event"] == "feedback"]
    assert len(events) == 3 and "dr-ada: disagree with AI 'bleed'" in events[0]["reason"]
    assert "calcification" in events[0]["reason"] and events[0]["old_rank"] == events[0]["new_rank"]
    listed = next(i for i in client.get("/api/worklist", headers=ADA).json()["items"] if i["uid"] == uid)
    assert len(listed["feedback"]) == 2
    with catalog.connect() as conn:
        trail = audit.trail(conn, after["study_instance_uid"], 50)
    assert [r.action for r in trail].count("feedback") == 3 and all("calcification" not in r.detail for r in trail)
    metrics = generate_latest(NodeMetrics(catalog).registry).decode()
    assert 'dicomnode_ai_feedback{model="ct-hemorrhage",model_version="0.2.0",verdict="agree"} 2.0' in metrics
    assert 'dicomnode_ai_agreement_ratio{model="ct-hemorrhage",model_version="0.2.0"} 1.0' in metrics


def test_feedback_refusals(tmp_path: Path) -> None:
    _, _, client, uid = _setup(tmp_path)
    [f] = client.get(f"/api/worklist/{uid}", headers=ADA).json()["flags"]
    good = {"result_uid": f["result_uid"], "label": "bleed", "verdict": "agree"}
    assert client.post(f"/api/worklist/{uid}/feedback", json=good).status_code == 401
    assert (
        client.post(f"/api/worklist/{uid}/feedback", json={**good, "verdict": "maybe"}, headers=ADA).status_code == 422
    )
    assert client.post(f"/api/worklist/{uid}/feedback", json={**good, "label": "other"}, headers=ADA).status_code == 404
    assert client.post("/api/worklist/2.25.1/feedback", json=good, headers=ADA).status_code == 404
    long = {**good, "comment": "x" * 2001}
    assert client.post(f"/api/worklist/{uid}/feedback", json=long, headers=ADA).status_code == 422


def test_feedback_from_the_command_line(tmp_path: Path) -> None:
    catalog, _, _, uid = _setup(tmp_path)
    config = write_config(
        tmp_path / "dicomnode.toml",
        {
            "catalog": {"url": f"sqlite:///{tmp_path / 'catalog.sqlite'}"},
            "http": {"tokens": READERS},
            "routing": {"rules": []},
        },
    )
    ok = dicomnode_cli(
        "feedback", uid, "--label", "bleed", "--verdict", "unsure", "--reader", "dr-bob", "--config", str(config)
    )
    assert ok.returncode == 0 and "dr-bob: unsure" in ok.stdout, ok.stderr
    stranger = dicomnode_cli(
        "feedback", uid, "--label", "bleed", "--verdict", "agree", "--reader", "eve", "--config", str(config)
    )
    assert stranger.returncode == 2 and "not a token name" in stranger.stderr
    unknown = dicomnode_cli(
        "feedback", uid, "--label", "nope", "--verdict", "agree", "--reader", "dr-bob", "--config", str(config)
    )
    assert unknown.returncode == 1 and "0 flags match 'nope' (flags: bleed)" in unknown.stderr
