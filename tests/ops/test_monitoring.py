"""Model monitoring from the catalog (SQLite and PostgreSQL): the figures per model version, input drift against
the baseline, readers' agreement with its interval; alerts raised once when a figure crosses its threshold
(recorded, audited, sent as a `model_alert` webhook, exported as a metric) and cleared when it is back; no alert
when nothing changed; `dicomnode monitor` and its report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import AuditEvent, ModelAlert, Notification
from dicomnode.catalog.states import JobState
from dicomnode.cli.main import app
from dicomnode.config.export import NotifyConfig
from dicomnode.config.ops import MonitoringConfig
from dicomnode.ops.metrics import CatalogCollector
from dicomnode.ops.monitoring import alerts
from dicomnode.ops.monitoring.drift import psi_categorical, psi_numeric
from dicomnode.ops.monitoring.figures import monitored, wilson
from tests.support.monitoring_data import add_feedback, add_run

NOW = datetime(2026, 12, 1, 12, 0, 0)
CONFIG = MonitoringConfig(baseline_studies=60, min_studies=30, min_feedback=20)
HOOK = NotifyConfig(webhooks=["http://127.0.0.1:9/hook"])


def baseline(conn, days_ago: float = 30, now: datetime = NOW) -> None:  # noqa: ANN001
    """60 studies a month ago: 10% positive, 5 mm Siemens heads."""
    for k in range(60):
        add_run(conn, now - timedelta(days=days_ago, minutes=k), positive=k % 10 == 0)


def shifted_week(conn, now: datetime = NOW) -> None:  # noqa: ANN001
    """This week: 40% positive, 1 mm GE scans, 4 failed jobs in 64, readers agreeing with 12 of 30 flags."""
    studies = []
    for k in range(60):
        features = {"slice_thickness_mm": 1.0, "manufacturer": "GE", "slices": 300}
        studies.append(add_run(conn, now - timedelta(hours=k + 1), positive=k % 5 < 2, features=features))
    for k in range(4):
        add_run(conn, now - timedelta(hours=k + 2), state=JobState.FAILED)
    for k, study in enumerate(studies[:30]):
        add_feedback(conn, study, "agree" if k < 12 else "disagree", now - timedelta(hours=k))


def test_the_figures_of_a_model_version(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        baseline(conn)
        shifted_week(conn)
        [v] = monitored(conn, CONFIG, NOW)
    assert (v["model"], v["model_version"], v["analysed"]) == ("ct-hemorrhage", "0.2.0", 60)
    assert v["positive_rate"] == 0.4 and v["baseline_positive_rate"] == 0.1
    assert sum(v["score_histogram"]) == 60 and v["score_histogram"][0] == 36 and v["score_histogram"][9] == 24
    assert sum(d["analysed"] for d in v["per_day"]) == 60 and sum(d["positive"] for d in v["per_day"]) == 24
    assert v["jobs"] == {"done": 60, "failed": 4, "out_of_scope": 0, "failed_rate": 0.0625, "out_of_scope_rate": 0.0}
    assert v["time_to_result_s"]["n"] == 60 and 3.5 <= v["time_to_result_s"]["mean"] <= 7.5
    psi = v["drift"]["psi"]
    assert v["drift"]["baseline_n"] == 60 and v["drift"]["current_n"] == 60
    assert psi["slice_thickness_mm"] > 1 and psi["manufacturer"] > 1 and psi["slices"] > 1
    assert psi["kernel"] == 0 and psi["kvp"] == 0, "unchanged features do not drift"
    fb = v["feedback"]
    assert (fb["agree"], fb["disagree"], fb["agreement_rate"]) == (12, 18, 0.4)
    assert fb["agreement_ci95"] == wilson(12, 30) and fb["agreement_ci95"][0] < 0.4 < fb["agreement_ci95"][1]


def test_alerts_are_raised_once_recorded_sent_and_cleared(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        baseline(conn)
        shifted_week(conn)
    assert alerts.check(any_catalog, CONFIG, HOOK, NOW) > 0
    with any_catalog.connect() as conn:
        kinds = {r.kind for r in conn.execute(select(ModelAlert.__table__)).all()}
        notes = [r.payload for r in conn.execute(select(Notification.__table__)).all()]
        audited = [r.action for r in conn.execute(select(AuditEvent.__table__)).all()]
    assert {"positive rate", "failed rate", "agreement", "drift: slice_thickness_mm", "drift: manufacturer"} <= kinds
    assert "drift: kernel" not in kinds and "out-of-scope rate" not in kinds
    assert {n["event"] for n in notes} == {"model_alert"} and len(notes) == len(kinds)
    assert audited.count("model alert") == len(kinds)
    assert alerts.check(any_catalog, CONFIG, HOOK, NOW) == 0, "an open alert is not raised again"
    gauges = {
        tuple(s.labels.values())
        for family in CatalogCollector(any_catalog).collect()
        if family.name == "dicomnode_model_alert"
        for s in family.samples
    }
    assert ("ct-hemorrhage", "0.2.0", "positive rate") in gauges and len(gauges) == len(kinds)

    later = NOW + timedelta(days=30)  # a month of studies like the baseline again: every alert judged clears
    with any_catalog.begin() as conn:
        for k in range(60):
            study = add_run(conn, later - timedelta(hours=k + 1), positive=k % 10 == 0)
            if k < 25:
                add_feedback(conn, study, "agree", later - timedelta(hours=k))
    alerts.check(any_catalog, CONFIG, HOOK, later)
    with any_catalog.connect() as conn:
        still_open = alerts.open_alerts(conn)
        audited = [r.action for r in conn.execute(select(AuditEvent.__table__)).all()]
    assert still_open == [] and audited.count("alert cleared") == len(kinds)


def test_no_alert_when_nothing_changed(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        baseline(conn)
        for k in range(60):
            add_run(conn, NOW - timedelta(hours=k + 1), positive=k % 10 == 3)
    assert alerts.check(any_catalog, CONFIG, HOOK, NOW) == 0


def test_too_few_studies_neither_raise_nor_clear(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        baseline(conn)
        for k in range(10):  # all positive, but only 10 studies this week
            add_run(conn, NOW - timedelta(hours=k + 1), positive=True, features={"manufacturer": "GE"})
    assert alerts.check(any_catalog, CONFIG, HOOK, NOW) == 0


def test_psi() -> None:
    same = [float(v) for v in range(100)]
    assert psi_numeric(same, same) == 0 and psi_numeric([1.0], same) is None
    assert psi_numeric(same, [v + 50 for v in same]) > 0.25
    assert psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 50 + ["b"] * 50) == 0
    assert psi_categorical(["a"] * 100, ["b"] * 100) > 1 and psi_categorical([], ["a"]) is None


def test_monitor_prints_figures_and_writes_a_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = open_catalog(url)
    now = utcnow()  # the command judges the real present: the rows are put around it, whatever today is
    with catalog.begin() as conn:
        baseline(conn, days_ago=3, now=now)
        shifted_week(conn, now=now)
    alerts.check(catalog, CONFIG, HOOK, now)
    (tmp_path / "node.toml").write_text(f'[catalog]\nurl = "{url}"\n[monitoring]\nwindow_days = 30\n')
    config = ["--config", str(tmp_path / "node.toml")]
    runner = CliRunner()
    result = runner.invoke(app, ["monitor", *config, "--json"])
    assert result.exit_code == 0, result.output
    [line] = result.output.strip().splitlines()
    figures = json.loads(line)
    assert figures["analysed"] == 120 and figures["alerts"] and figures["feedback"]["agree"] == 12
    table = runner.invoke(app, ["monitor", *config])
    assert table.exit_code == 0 and "ct-hemorrhage" in table.output
    for name in ("report.png", "report.pdf"):
        result = runner.invoke(app, ["monitor", *config, "report", "--out", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "report.png") as image:
        assert image.format == "PNG" and image.width == 1400
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    bad = runner.invoke(app, ["monitor", *config, "--since", "last tuesday"])
    assert bad.exit_code == 2 and "not an ISO date" in bad.output
    bad = runner.invoke(app, ["monitor", *config, "report", "--out", str(tmp_path / "r.svg")])
    assert bad.exit_code == 2


@pytest.mark.parametrize("fields", [{"baseline_from": "2026-01-01T00:00:00"}, {"psi_alert": 0}])
def test_bad_monitoring_config_is_refused(fields: dict) -> None:
    with pytest.raises(ValueError):
        MonitoringConfig(**fields)
