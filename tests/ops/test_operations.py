"""/healthz and /metrics without a node process: a real catalog, a real (refused) broker connection, a disk
floor above what is free. Neither needs a token; neither carries patient data."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from dicomnode.api.app import Operations, create_app
from dicomnode.catalog.db import open_catalog
from dicomnode.config.settings import Settings
from dicomnode.ops.health import check_all
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.receive.storage import Storage
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import free_port
from tests.support.worklist_data import add_study


def client_for(tmp_path: Path, listening: bool = True, **sections: dict) -> TestClient:
    settings = Settings(routing={"rules": []}, **sections)
    catalog = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    with catalog.begin() as conn:
        add_study(conn, "STAT", 5)
    metrics = NodeMetrics(catalog)
    storage = Storage(tmp_path / "storage", settings.storage.min_free_bytes)
    storage.free_bytes = lambda: 50 * 1024**3  # a fixed 50 GiB free: a full disk cannot be made here on demand
    operations = Operations(metrics.registry, lambda: check_all(settings, catalog, lambda: listening, storage))
    return TestClient(create_app(settings, catalog, WorklistWatcher(catalog, settings.worklist), operations))


def test_healthy_node_answers_200_without_a_token(tmp_path: Path) -> None:
    report = client_for(tmp_path).get("/healthz")
    assert report.status_code == 200
    assert {k: v["ok"] for k, v in report.json()["checks"].items()} == {
        "dicom_listener": True,
        "catalog": True,
        "broker": True,
        "disk": True,
    }


def test_each_failing_part_turns_health_to_503_and_names_it(tmp_path: Path) -> None:
    dead_broker = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there: a real refused connection
    report = client_for(
        tmp_path, listening=False, analysis={"broker_url": dead_broker}, storage={"min_free_bytes": 100 * 1024**3}
    ).get("/healthz")
    assert report.status_code == 503 and report.json()["status"] == "failing"
    checks = report.json()["checks"]
    assert not checks["broker"]["ok"] and "ConnectionError" in checks["broker"]["detail"]
    assert not checks["disk"]["ok"] and "below storage.min_free_bytes" in checks["disk"]["detail"]
    assert not checks["dicom_listener"]["ok"] and checks["catalog"]["ok"]


def test_metrics_are_prometheus_text_without_patient_data(tmp_path: Path) -> None:
    response = client_for(tmp_path).get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'dicomnode_worklist_items{state="SCHEDULED"} 1.0' in text
    assert "dicomnode_worklist_oldest_waiting_seconds" in text and 'dicomnode_jobs{state="pending"} 0.0' in text
    assert "# TYPE dicomnode_inference_seconds histogram" in text
    assert "Test^Patient" not in text and "PID" not in text and "ACC" not in text
