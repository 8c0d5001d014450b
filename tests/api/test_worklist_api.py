"""The HTTP API over a real catalog (FastAPI's TestClient, no network): bearer tokens, the REST worklist, UPS-RS
search / retrieve / change state with Transaction UID semantics, and the right HTTP status for each refusal."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydicom import Dataset
from sqlalchemy import Engine

from dicomnode.api.app import create_app
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.config.settings import Settings
from dicomnode.worklist import items
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS
from tests.support.worklist_data import add_study, flag, workitem_of

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
BOB = {"Authorization": f"Bearer {READERS[1]['token']}"}


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Engine]:
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    yield engine
    engine.dispose()


@pytest.fixture
def client(catalog: Engine) -> TestClient:
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    return TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist)))


@pytest.fixture
def studies(catalog: Engine) -> dict[str, str]:
    """Three open studies, the routine one AI-flagged; their workitem UIDs by name."""
    now = utcnow()
    with catalog.begin() as conn:
        pks = {
            "stat": add_study(conn, "STAT", 20, now=now),
            "low": add_study(conn, "LOW", 30, now=now),
            "bleed": add_study(conn, "ROUTINE", 2, now=now),
            "dx": add_study(conn, "HIGH", 1, "DX", now=now),
        }
        items.record_ai(
            conn,
            pks["bleed"],
            [flag("intracranial hemorrhage", 0.97)],
            "ct-hemorrhage",
            "0.2.0",
            Settings(routing={"rules": []}).worklist,
            now,
        )
        return {name: workitem_of(conn, pk) for name, pk in pks.items()}


@pytest.mark.parametrize(
    "path",
    [
        "/api/worklist",
        "/api/worklist/1.2.3",
        "/api/me",
        "/workitems",
        "/workitems/1.2.3",
        "/api/worklist/events",
        "/api/openapi.json",
    ],
)
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong-token-0000000"}, {"Authorization": READERS[0]["token"]}]
)
def test_every_api_route_needs_a_valid_bearer_token(client: TestClient, path: str, headers: dict) -> None:
    response = client.get(path, headers=headers)
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert READERS[0]["token"] not in response.text


def test_no_tokens_configured_refuses_everyone(catalog: Engine) -> None:
    settings = Settings(routing={"rules": []})
    client = TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist)))
    assert client.get("/api/worklist", headers={"Authorization": "Bearer anything-at-all-000"}).status_code == 401
    assert client.get("/").status_code == 200, "the page itself holds no data"


def test_list_in_reading_order_with_explanations_and_filters(client: TestClient, studies: dict[str, str]) -> None:
    body = client.get("/api/worklist", headers=ADA).json()
    assert [i["uid"] for i in body["items"]] == [studies[k] for k in ("bleed", "stat", "dx", "low")]
    assert body["total"] == 4 and [i["rank"] for i in body["items"]] == [1, 2, 3, 4]
    top = body["items"][0]
    assert top["flagged"] and top["flags"][0]["label"] == "intracranial hemorrhage"
    assert (
        top["explanation"] == "AI: intracranial hemorrhage p=0.97 (ct-hemorrhage 0.2.0); ROUTINE order; waiting 2 min"
    )
    assert top["patient_name"] and top["accession_number"] and top["waiting_minutes"] >= 2

    arrival = client.get("/api/worklist?order=arrival", headers=ADA).json()["items"]
    assert [i["uid"] for i in arrival] == [studies[k] for k in ("low", "stat", "bleed", "dx")]
    assert [i["uid"] for i in client.get("/api/worklist?flagged=true", headers=ADA).json()["items"]] == [
        studies["bleed"]
    ]
    dx = client.get("/api/worklist?modality=DX", headers=ADA).json()["items"]
    assert [(i["uid"], i["rank"]) for i in dx] == [(studies["dx"], 3)]
    page = client.get("/api/worklist?limit=2&offset=1", headers=ADA).json()
    assert [i["rank"] for i in page["items"]] == [2, 3] and page["total"] == 4
    for bad in ("order=loudest", "limit=0", "state=lost", "flagged=maybe", "offset=99999999999999999999", "offset=-1"):
        assert client.get(f"/api/worklist?{bad}", headers=ADA).status_code == 422, bad
    for bad in ("offset=99999999999999999999", "limit=10001", "offset=x"):
        assert client.get(f"/workitems?{bad}", headers=ADA).status_code == 400, bad  # UPS-RS answers 400


def test_every_response_carries_the_security_headers(client: TestClient) -> None:
    for path, headers in [("/", {}), ("/api/worklist", ADA), ("/api/worklist", {}), ("/api/docs", {}), ("/nope", {})]:
        response = client.get(path, headers=headers)
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        policy = response.headers["content-security-policy"]
        assert "script-src 'self';" in policy and "frame-ancestors 'none'" in policy, path
    page = client.get("/").text
    assert "<script>" not in page and "<style>" not in page  # the policy allows no inline code
    assert client.get("/static/worklist.js").status_code == 200


def test_the_schema_and_docs_need_no_cdn_and_the_schema_a_token(client: TestClient) -> None:
    docs = client.get("/api/docs").text
    assert "cdn" not in docs.lower() and "/api/docs/assets/swagger-ui-bundle.js" in docs
    assert client.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/api/openapi.json").status_code == 401
    schema = client.get("/api/openapi.json", headers=ADA).json()
    assert "/api/worklist" in schema["paths"]
    assert client.get("/redoc").status_code == 404 and client.get("/docs").status_code == 404


def test_a_token_removed_from_the_list_is_refused_at_once(catalog: Engine) -> None:
    settings = Settings(http={"tokens": READERS}, routing={"rules": []})
    app = create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist))
    client = TestClient(app)
    assert client.get("/api/me", headers=BOB).status_code == 200
    app.state.readers.replace(Settings(http={"tokens": READERS[:1]}, routing={"rules": []}).http.tokens)
    assert client.get("/api/me", headers=BOB).status_code == 401
    assert client.get("/api/me", headers=ADA).json() == {"reader": READERS[0]["name"]}


def test_claim_release_complete_over_rest(client: TestClient, studies: dict[str, str]) -> None:
    uid = studies["bleed"]
    claimed = client.post(f"/api/worklist/{uid}/claim", headers=ADA)
    assert claimed.status_code == 200 and claimed.json()["claimed_by"] == "dr-ada"
    second = client.post(f"/api/worklist/{uid}/claim", headers=BOB)
    assert second.status_code == 409 and "IN PROGRESS by dr-ada" in second.json()["detail"]
    assert client.post(f"/api/worklist/{uid}/complete", headers=BOB).status_code == 409
    assert client.post(f"/api/worklist/{uid}/release", headers=ADA).status_code == 200
    assert client.post(f"/api/worklist/{uid}/claim", headers=BOB).status_code == 200
    assert client.post(f"/api/worklist/{uid}/complete", headers=BOB).status_code == 200
    assert client.post(f"/api/worklist/{uid}/complete", headers=BOB).status_code == 409
    assert client.post("/api/worklist/1.2.3.4/claim", headers=ADA).status_code == 404

    item = client.get(f"/api/worklist/{uid}", headers=ADA).json()
    assert item["state"] == "COMPLETED" and item["rank"] is None and item["explanation"] == "COMPLETED by dr-bob"
    assert [(h["event"], h["by"]) for h in item["history"]] == [
        ("created", "dicomnode"),
        ("ai", "ct-hemorrhage 0.2.0"),
        ("claimed", "dr-ada"),
        ("released", "dr-ada"),
        ("claimed", "dr-bob"),
        ("completed", "dr-bob"),
    ]
    assert (item["history"][1]["old_rank"], item["history"][1]["new_rank"]) == (3, 1)
    assert [i["uid"] for i in client.get("/api/worklist", headers=ADA).json()["items"]][0] == studies["stat"]
    assert client.get("/api/worklist?state=completed", headers=ADA).json()["total"] == 1


def test_ups_search_maps_priorities_and_pages(client: TestClient, studies: dict[str, str]) -> None:
    found = client.get("/workitems", headers=ADA)
    assert found.status_code == 200 and found.headers["content-type"] == "application/dicom+json"
    datasets = found.json()
    assert [d["00080018"]["Value"][0] for d in datasets] == [studies[k] for k in ("bleed", "stat", "dx", "low")]
    bleed = datasets[0]
    assert bleed["00080016"]["Value"] == ["1.2.840.10008.5.1.4.34.6.1"]
    assert bleed["00741000"]["Value"] == ["SCHEDULED"] and bleed["00741200"]["Value"] == ["MEDIUM"]
    assert bleed["0040A370"]["Value"][0]["00080050"]["Value"][0].startswith("ACC")
    assert "intracranial hemorrhage" in bleed["00400400"]["Value"][0]
    assert "00081195" not in bleed, "the Transaction UID is never returned"
    parsed = Dataset.from_json(bleed)  # the DICOM JSON is well formed, with the standard's keywords
    assert parsed.ScheduledProcedureStepPriority == "MEDIUM" and parsed.ProcedureStepLabel == "CT HEAD"
    assert parsed.ReferencedRequestSequence[0].StudyInstanceUID == parsed.StudyInstanceUID
    assert parsed.ScheduledProcedureStepStartDateTime.endswith("+0000") and parsed.PatientName

    def uids(query: str) -> list[str]:
        response = client.get(f"/workitems?{query}", headers=ADA)
        return [] if response.status_code == 204 else [d["00080018"]["Value"][0] for d in response.json()]

    assert uids("ScheduledProcedureStepPriority=HIGH") == [studies["stat"], studies["dx"]], "STAT is HIGH in UPS"
    assert uids("00741200=LOW") == [studies["low"]]
    assert uids("limit=2&offset=1") == [studies["stat"], studies["dx"]]
    assert uids("ProcedureStepState=COMPLETED") == []
    assert client.get("/workitems?ProcedureStepState=COMPLETED", headers=ADA).status_code == 204
    accession = bleed["0040A370"]["Value"][0]["00080050"]["Value"][0]
    assert uids(f"AccessionNumber={accession}") == uids(f"0040A370.00080050={accession}") == [studies["bleed"]]
    assert uids("includefield=all&includefield=00741000,PatientName") == uids("")
    ignored = client.get("/workitems?PatientSex=F", headers=ADA)
    assert ignored.status_code == 200 and "PatientSex" in ignored.headers["warning"]
    for bad in (
        "ScheduledProcedureStepPriority=STAT",
        "ProcedureStepState=DONE",
        "limit=x",
        "offset=-1",
        "includefield=NoSuchAttribute",
    ):
        assert client.get(f"/workitems?{bad}", headers=ADA).status_code == 400, bad
    one = client.get(f"/workitems/{studies['low']}", headers=ADA)
    assert one.status_code == 200 and one.json()[0]["00741200"]["Value"] == ["LOW"]
    assert client.get("/workitems/1.2.3.4", headers=ADA).status_code == 404


def state(value: str, transaction_uid: str | None) -> str:
    body = {"00741000": {"vr": "CS", "Value": [value]}}
    if transaction_uid:
        body["00081195"] = {"vr": "UI", "Value": [transaction_uid]}
    return json.dumps(body)


def test_ups_change_state_follows_transaction_uid_semantics(client: TestClient, studies: dict[str, str]) -> None:
    url = f"/workitems/{studies['stat']}/state"
    headers = {**ADA, "Content-Type": "application/dicom+json"}
    assert client.put(url, content=state("IN PROGRESS", None), headers=headers).status_code == 400
    assert client.put(url, content="not json", headers=headers).status_code == 400
    assert client.put(url, content=state("IN PROGRESS", "1.2.840.1.1"), headers=headers).status_code == 200
    second = client.put(url, content=state("IN PROGRESS", "1.2.840.1.2"), headers={**headers, **BOB})
    assert second.status_code == 409, "a second claimer is refused"
    assert client.put(url, content=state("COMPLETED", "1.2.840.1.2"), headers=headers).status_code == 400
    assert client.put(url, content=state("SCHEDULED", "1.2.840.1.1"), headers=headers).status_code == 400
    done = client.put(url, content=f"[{state('COMPLETED', '1.2.840.1.1')}]", headers=headers)
    assert done.status_code == 200
    assert client.put(url, content=state("CANCELED", "1.2.840.1.1"), headers=headers).status_code == 409
    assert client.put(url, content=state("IN PROGRESS", "1.2.840.1.3"), headers=headers).status_code == 409
    assert (
        client.put("/workitems/1.2.3.4/state", content=state("IN PROGRESS", "1.2.3"), headers=headers).status_code
        == 404
    )
    retrieved = client.get(f"/workitems/{studies['stat']}", headers=ADA).json()[0]
    assert retrieved["00741000"]["Value"] == ["COMPLETED"]
    rest = client.get(f"/api/worklist/{studies['stat']}", headers=ADA).json()
    assert rest["claimed_by"] == "dr-ada", "UPS claims name the token's reader too"


def test_tokens_never_reach_the_logs(client: TestClient, studies: dict[str, str], caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    client.post(f"/api/worklist/{studies['dx']}/claim", headers=ADA)
    client.get("/api/worklist", headers={"Authorization": "Bearer wrong-token-0000000"})
    assert "worklist item" in caplog.text and "dr-ada" in caplog.text
    assert READERS[0]["token"] not in caplog.text and "wrong-token" not in caplog.text


def test_the_shared_ranking_follows_every_change_and_the_clock(catalog: Engine) -> None:
    """List requests share one ranking snapshot; a change committed anywhere (seen by the watcher) or an item
    passing its maximum wait gives the next request a fresh one."""
    from datetime import timedelta

    from dicomnode.worklist import order
    from dicomnode.worklist.snapshot import RankedView

    waits = {"STAT": 1000, "HIGH": 1000, "ROUTINE": 1000, "LOW": 720}
    settings = Settings(routing={"rules": []}, worklist={"scoring": {"max_wait_minutes": waits}})
    watcher = WorklistWatcher(catalog, settings.worklist)
    view = RankedView(catalog, settings.worklist.scoring, watcher)
    now = utcnow()
    with catalog.begin() as conn:
        stat, low = add_study(conn, "STAT", 1, now=now), add_study(conn, "LOW", 600, now=now)
        uids = {workitem_of(conn, stat): "stat", workitem_of(conn, low): "low"}
    watcher.check()

    def names(at=now) -> list[str]:  # noqa: ANN001
        rows, total = view.page("urgency", order.Filters(), 10, 0, at)
        assert total == len(rows)
        return [uids[r.workitem_uid] for r in rows]

    assert names() == ["low", "stat"], "600 min of aging already lift the LOW study"
    with catalog.begin() as conn:  # a worker in another process flags the STAT study
        items.record_ai(conn, stat, [flag("bleed", 0.99)], "ct-hemorrhage", "0.2.0", settings.worklist, now)
    assert names() == ["low", "stat"], "not yet seen by the watcher"
    assert watcher.check()
    assert names() == ["stat", "low"]
    assert names(now + timedelta(minutes=121)) == ["low", "stat"], "past 720 min the LOW study is overdue: top"


def test_a_change_seen_by_the_watcher_wakes_the_senders(catalog: Engine) -> None:
    """A stored result touches its item; the watcher's look that sees it wakes the exporter and notifier (the
    node passes their wake), once per change and not on a quiet look."""
    settings = Settings(routing={"rules": []})
    woken: list[int] = []
    watcher = WorklistWatcher(catalog, settings.worklist, on_change=[lambda: woken.append(watcher.version)])
    with catalog.begin() as conn:
        pk = add_study(conn, "ROUTINE", 1)
    assert watcher.check() and woken == [1]
    assert not watcher.check() and woken == [1], "nothing changed: no wake"
    with catalog.begin() as conn:  # a worker's result transaction
        items.record_ai(conn, pk, [], "ct-hemorrhage", "0.2.0", settings.worklist)
    assert watcher.check() and woken == [1, 2], "a result with no findings still wakes the exporter"
