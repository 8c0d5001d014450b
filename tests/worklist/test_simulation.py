"""The triage simulator: it orders studies exactly as the worklist ranks them, it reproduces the published
qualitative results (the AI policy cuts the waits of critical studies sharply against first come first served;
without a maximum wait the longest routine wait grows), and `dicomnode simulate` writes its figures and plot."""

from __future__ import annotations

import csv
import json
import random
from datetime import timedelta
from pathlib import Path

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.cli.main import app
from dicomnode.config.worklist import WorklistConfig
from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist import items
from dicomnode.worklist.scoring import AIFlag, ScoringPolicy, WorkItem, rank
from dicomnode.worklist.simulation.arrivals import Stream, synthetic
from dicomnode.worklist.simulation.engine import START, queue_for
from dicomnode.worklist.simulation.run import run
from dicomnode.worklist.simulation.scenario import Arrivals, Scenario
from tests.support.monitoring_data import add_feedback
from tests.support.worklist_data import add_study, flag

REQUIRED = {"critical_mean_wait_min", "critical_p95_wait_min", "routine_max_wait_min", "routine_mean_wait_min"}


def test_the_simulated_queue_takes_studies_in_the_worklists_order() -> None:
    """300 waiting studies (classes, weak and strong flags, some past their maximum wait): the simulator's queue
    gives them out in exactly scoring.rank()'s order."""
    rng = random.Random(11)
    n = 300
    minute = np.sort(np.array([rng.uniform(0, 600) for _ in range(n)]))
    priority = np.array([rng.choice(list(PriorityClass)).value for _ in range(n)])
    probability = np.array([rng.uniform(0, 1) if rng.random() < 0.3 else np.nan for _ in range(n)])
    stream = Stream(minute, priority, np.array(["CT"] * n), np.zeros(n, bool), np.ones(n), probability)
    policy = ScoringPolicy()
    now = 700.0
    queue = queue_for("dicomnode", stream, policy, "bleed", 0.8)
    for i in range(n):
        queue.push(i)
    taken = [queue.pop(now) for _ in range(n)]
    items = [
        WorkItem(
            str(i),
            PriorityClass(int(priority[i])),
            START + timedelta(minutes=float(minute[i])),
            () if np.isnan(probability[i]) else (AIFlag("bleed", float(probability[i]), 0.8, "model", "1"),),
        )
        for i in range(n)
    ]
    ranked = rank(items, START + timedelta(minutes=now), policy)
    assert taken == [int(r.item.key) for r in ranked]
    assert any(r.overdue_minutes > 0 for r in ranked) and any(r.overdue_minutes == 0 for r in ranked)


def test_the_node_policy_cuts_critical_waits_against_first_come_first_served() -> None:
    """The target scenario (40 studies an hour, 4 readers near saturation, 2% critical, model at 0.9/0.9)."""
    scenario = Scenario()
    out = run(synthetic(scenario), scenario, ScoringPolicy())
    assert 0.9 < out["offered_load"] < 1.0
    fifo, classes, node = (out["policies"][p] for p in ("fifo", "class_priority", "dicomnode"))
    assert node["critical_n"] >= 50
    assert out["comparison"]["critical_mean_wait_cut_vs_fifo"] >= 0.6
    assert node["critical_mean_wait_min"] < classes["critical_mean_wait_min"] < fifo["critical_mean_wait_min"]
    assert all(set(p) >= REQUIRED for p in out["policies"].values())


def test_without_a_maximum_wait_the_longest_routine_wait_grows() -> None:
    """A day busier than the readers from 7:00 to 18:00 (queues of hours, as in Baltruschat 2021): the maximum
    waits keep routine studies from starving; without them the longest routine wait grows."""
    profile = [0.5] * 7 + [1.7] * 11 + [0.7] * 6
    scenario = Scenario(arrivals=Arrivals(day_profile=profile, days=14))
    out = run(synthetic(scenario), scenario, ScoringPolicy(), ("dicomnode", "dicomnode_unbounded"))
    bounded, unbounded = out["policies"]["dicomnode"], out["policies"]["dicomnode_unbounded"]
    assert unbounded["routine_max_wait_min"] > 1.1 * bounded["routine_max_wait_min"]
    assert bounded["routine_max_wait_min"] > ScoringPolicy().max_wait(PriorityClass.ROUTINE), "the bound was reached"


def test_simulate_writes_its_figures_and_a_plot(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--days", "2", "--json", str(tmp_path / "s.json"), "--plot", str(tmp_path / "s.png")]
    )
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "s.json").read_text())
    assert set(figures["policies"]) == {"fifo", "class_priority", "dicomnode", "dicomnode_unbounded"}
    assert all(set(p) >= REQUIRED for p in figures["policies"].values())
    with Image.open(tmp_path / "s.png") as image:
        assert image.format == "PNG" and image.width >= 800
    assert "dicomnode vs first come first served" in result.output


def test_simulate_reads_arrivals_from_a_csv_and_names_a_bad_line(tmp_path: Path) -> None:
    good = tmp_path / "arrivals.csv"
    with good.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["time", "modality", "order_class", "truth"])
        for k in range(200):
            w.writerow([f"2026-03-02T08:{k // 4:02d}:{(k % 4) * 15:02d}", "CT", "ROUTINE", "1" if k % 20 == 0 else "0"])
    result = CliRunner().invoke(app, ["simulate", "--arrivals", str(good), "--json", str(tmp_path / "out.json")])
    assert result.exit_code == 0, result.output
    figures = json.loads((tmp_path / "out.json").read_text())
    assert figures["studies"] == 200 and figures["policies"]["fifo"]["critical_n"] == 10
    bad = tmp_path / "bad.csv"
    bad.write_text("time,modality,order_class,truth\n0,CT,ROUTINE,0\nsoon,CT,ROUTINE,0\n")
    result = CliRunner().invoke(app, ["simulate", "--arrivals", str(bad)])
    assert result.exit_code == 2 and "line 3: time is an ISO 8601 date-time or minutes" in result.output
    bad.write_text("time,modality\n0,CT\n")
    result = CliRunner().invoke(app, ["simulate", "--arrivals", str(bad)])
    assert result.exit_code == 2 and "missing column(s) order_class" in result.output
    result = CliRunner().invoke(app, ["simulate", "--readers", "0"])
    assert result.exit_code == 2 and "room.readers" in result.output


def test_simulate_replays_the_nodes_own_arrivals_with_their_flags(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    catalog = open_catalog(url)
    now = utcnow()
    config = WorklistConfig()
    with catalog.begin() as conn:
        for k in range(120):
            study = add_study(conn, ["STAT", "ROUTINE", "LOW"][k % 3], 60 + k * 30, now=now)  # 2.5 days of arrivals
            if k % 10 == 0:
                items.record_ai(conn, study, [flag("bleed", 0.8)], "ct-hemorrhage", "0.2.0", config, now)
                if k % 20 == 0:
                    add_feedback(conn, study, "agree", now)
        add_study(conn, "ROUTINE", 60 * 24 * 9, now=now)  # nine days ago: outside the replay
    (tmp_path / "node.toml").write_text(f'[catalog]\nurl = "{url}"\n')
    out = tmp_path / "replay.json"
    args = ["simulate", "--config", str(tmp_path / "node.toml"), "--from-catalog", "--days", "7", "--json", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    figures = json.loads(out.read_text())
    assert figures["studies"] == 120 and figures["flagged_share"] == 0.1
    assert figures["policies"]["fifo"]["critical_n"] == 6, "critical: a reader agreed with its flag"
    assert set(figures["policies"]["dicomnode"]["by_class"]) == {"STAT", "ROUTINE", "LOW"}
    empty = CliRunner().invoke(app, [*args[:4], "--from-catalog", "--days", "0.01"])  # the last 14 minutes
    assert empty.exit_code == 2 and "no worklist items arrived" in empty.output


def test_simulate_takes_the_models_operating_point_from_its_evaluation(tmp_path: Path) -> None:
    evaluation = tmp_path / "eval.json"
    runner = CliRunner()
    out = {}
    for name, figures in (
        ("weak", {"sensitivity": 0.6, "specificity": 0.7}),
        ("strong", {"sensitivity": 0.97, "specificity": 0.95}),
    ):
        evaluation.write_text(json.dumps({"auc": 0.9, **figures}) + "\n")
        result = runner.invoke(
            app, ["simulate", "--evaluation", str(evaluation), "--json", str(tmp_path / f"{name}.json")]
        )
        assert result.exit_code == 0, result.output
        out[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert (
        out["strong"]["comparison"]["critical_mean_wait_cut_vs_fifo"]
        > out["weak"]["comparison"]["critical_mean_wait_cut_vs_fifo"]
    )
    evaluation.write_text("not figures\n")
    result = runner.invoke(app, ["simulate", "--evaluation", str(evaluation)])
    assert result.exit_code == 2 and "no `models evaluate` figures" in result.output
