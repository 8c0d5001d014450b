"""The monitoring API and page: figures and alerts for a reader token only; the page (real headless Chromium,
under the node's CSP) draws each model version's charts and its alerts from the API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from sqlalchemy import Engine

from dicomnode.api.app import create_app
from dicomnode.api.server import HttpServer
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.config.export import NotifyConfig
from dicomnode.config.settings import Settings
from dicomnode.ops.monitoring import alerts
from dicomnode.worklist.watcher import WorklistWatcher
from tests.support.helpers import READERS
from tests.support.monitoring_data import add_feedback, add_run

TOKEN = {"Authorization": f"Bearer {READERS[0]['token']}"}
SETTINGS = Settings(
    http={"tokens": READERS, "port": 0, "host": "127.0.0.1"},
    routing={"rules": []},
    monitoring={"baseline_studies": 40, "min_studies": 20, "min_feedback": 10},
)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Engine]:
    engine = open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")
    now = utcnow()
    with engine.begin() as conn:
        for k in range(40):  # baseline a month ago: 10% positive
            add_run(conn, now - timedelta(days=30, minutes=k), positive=k % 10 == 0)
        for k in range(40):  # this week: half positive, from another scanner; readers disagree with most flags
            study = add_run(conn, now - timedelta(hours=k + 1), positive=k % 2 == 0, features={"manufacturer": "GE"})
            if k < 12:
                add_feedback(conn, study, "agree" if k < 3 else "disagree", now - timedelta(hours=k))
    alerts.check(engine, SETTINGS.monitoring, NotifyConfig())
    yield engine
    engine.dispose()


def test_the_api_answers_readers_only(catalog: Engine) -> None:
    client = TestClient(create_app(SETTINGS, catalog, WorklistWatcher(catalog, SETTINGS.worklist)))
    assert client.get("/api/monitoring").status_code == 401
    body = client.get("/api/monitoring", headers=TOKEN).json()
    [v] = body["versions"]
    assert v["analysed"] == 40 and v["positive_rate"] == 0.5 and v["baseline_positive_rate"] == 0.1
    assert {a["kind"] for a in body["alerts"]} >= {"positive rate", "drift: manufacturer", "agreement"}
    assert client.get("/api/monitoring?since=yesterday", headers=TOKEN).status_code == 422
    assert client.get("/api/monitoring?model=other", headers=TOKEN).json()["versions"] == []
    page = client.get("/monitor")
    assert page.status_code == 200 and "ct-hemorrhage" not in page.text, "the page holds no data"


def test_the_page_draws_the_charts_and_the_alerts(catalog: Engine, browser) -> None:  # noqa: ANN001
    watcher = WorklistWatcher(catalog, SETTINGS.worklist)
    server = HttpServer(create_app(SETTINGS, catalog, watcher), SETTINGS.http)
    server.start()
    try:
        browser.get(f"http://127.0.0.1:{server.port}/monitor")
        wait = WebDriverWait(browser, 20)
        wait.until(lambda d: d.find_element(By.ID, "token")).send_keys(READERS[0]["token"])
        browser.find_element(By.CSS_SELECTOR, "#signin-form button").click()
        section = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "section.version[data-model=ct-hemorrhage]"))
        text = section.text
        assert "40 studies; positive 50.0% (baseline 10.0%)" in text
        assert "Alert: positive rate" in text and "Alert: drift: manufacturer" in text
        charts = browser.execute_script(
            """const red = (f) => [...f.querySelectorAll('rect')].filter(r => r.getAttribute('fill') === '#c62828');
            return Object.fromEntries([...document.querySelectorAll('figure.chart')].map(f =>
                [f.dataset.chart, {bars: f.querySelectorAll('rect[data-value]').length, red: red(f).length}]))"""
        )
        assert charts["scores"]["bars"] == 10 and charts["drift"]["bars"] == 12
        assert charts["drift"]["red"] >= 1, "the drifted feature is drawn past its threshold"
        assert charts["per-day"]["bars"] >= 1 and charts["agreement"]["bars"] >= 1
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert errors == [], errors  # a script or style the CSP refused would be here
    finally:
        server.stop()
