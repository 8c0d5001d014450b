"""Worklist items in the catalog (SQLite and PostgreSQL): the SQL order agrees with the scoring policy, AI results
move items and say why, the starvation bound, the state machine, and the history of every rank change."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select

from dicomnode.api.app import http_status
from dicomnode.catalog.schema import WorkItem
from dicomnode.catalog.states import WorkItemState
from dicomnode.config.worklist import WorklistConfig
from dicomnode.worklist import items, order, scoring
from tests.support.worklist_data import NOW, add_study, flag, workitem_of

CONFIG = WorklistConfig()
_items = WorkItem.__table__


uid_of = workitem_of


def reading_order(conn, now=NOW, how="urgency", config=CONFIG, **filters) -> list[str]:  # noqa: ANN001, ANN003
    rows = conn.execute(order.ranked(config.scoring, now, how, order.Filters(**filters))).all()
    assert [r.rank for r in rows] == list(range(1, len(rows) + 1)) or filters, "ranks are 1..n in order"
    return [r.workitem_uid for r in rows]


def test_sql_order_is_the_scoring_policy_order(any_catalog: Engine) -> None:
    """200 random items (classes, AI flags, ages past and within the bound): the catalog's order and ranks are
    exactly scoring.rank()'s, in both orders."""
    rng = random.Random(7)
    with any_catalog.begin() as conn:
        for _ in range(200):
            study = add_study(conn, rng.choice(["STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW", None]), rng.uniform(0, 900))
            if rng.random() < 0.3:
                items.record_ai(
                    conn,
                    study,
                    [flag("bleed", rng.uniform(0.5, 1), rng.choice([0.5, 0.9, 1.0]))],
                    "ct-hemorrhage",
                    "0.2.0",
                    CONFIG,
                    NOW,
                )
        rows = conn.execute(select(_items)).all()
        for how in ("urgency", "arrival"):
            expected = [r.item.key for r in scoring.rank([items.as_scored(r) for r in rows], NOW, CONFIG.scoring, how)]
            assert reading_order(conn, how=how) == expected
    assert any(scoring.assess(items.as_scored(r), NOW, CONFIG.scoring).overdue_minutes > 0 for r in rows)


def test_an_ai_finding_moves_the_study_up_and_the_move_is_recorded(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        stat = add_study(conn, "STAT", 5)
        routine = add_study(conn, "ROUTINE", 10)
        bleed = add_study(conn, "ROUTINE", 1)
        assert reading_order(conn) == [uid_of(conn, s) for s in (stat, routine, bleed)]
        items.record_ai(conn, bleed, [flag("intracranial hemorrhage", 0.97)], "ct-hemorrhage", "0.2.0", CONFIG, NOW)
        assert reading_order(conn) == [uid_of(conn, s) for s in (bleed, stat, routine)]
        row = conn.execute(select(_items).where(_items.c.study_fk == bleed)).one()
        assert row.state == WorkItemState.SCHEDULED, "the AI moves items, never changes their state"
        created, ai = items.history(conn, row.id)
    assert (created.event, created.old_rank, created.new_rank) == ("created", None, 3)
    assert (ai.event, ai.old_rank, ai.new_rank, ai.actor) == ("ai", 3, 1, "ct-hemorrhage 0.2.0")
    assert ai.reason == "AI: intracranial hemorrhage p=0.97 (ct-hemorrhage 0.2.0); ROUTINE order; waiting 1 min"


def test_a_rerun_that_finds_nothing_moves_the_study_back_and_says_so(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        other = add_study(conn, "ROUTINE", 10)
        study = add_study(conn, "ROUTINE", 1)
        items.record_ai(conn, study, [flag("bleed", 0.9)], "ct-hemorrhage", "0.2.0", CONFIG, NOW)
        items.record_ai(conn, study, [flag("pneumothorax", 0.8, model="cxr", version="1")], "cxr", "1", CONFIG, NOW)
        row = conn.execute(select(_items).where(_items.c.study_fk == study)).one()
        assert {f["label"] for f in row.flags} == {"bleed", "pneumothorax"}, "each model's flags are kept"
        items.record_ai(conn, study, [], "ct-hemorrhage", "0.2.0", CONFIG, NOW)
        items.record_ai(conn, study, [], "cxr", "1", CONFIG, NOW)
        row = conn.execute(select(_items).where(_items.c.study_fk == study)).one()
        assert row.flags == [] and row.ai_urgency == 0
        assert reading_order(conn) == [uid_of(conn, other), row.workitem_uid]
        last = items.history(conn, row.id)[-1]
    assert last.reason.startswith("AI: nothing found (cxr 1)") and last.new_rank == 2


def test_no_study_starves_past_its_class_maximum_wait(any_catalog: Engine) -> None:
    """A LOW study waiting past its 720 min bound goes above flagged STAT studies, and the jump is recorded.
    (Slow aging, so that only the bound can lift it.)"""
    slow = WorklistConfig(scoring=scoring.ScoringPolicy(aging_per_minute=0.01))
    with any_catalog.begin() as conn:
        low = add_study(conn, "LOW", 700, config=slow)
        stats = [add_study(conn, "STAT", 1, config=slow) for _ in range(3)]
        for s in stats:
            items.record_ai(conn, s, [flag("bleed", 0.99)], "ct-hemorrhage", "0.2.0", slow, NOW)
        assert reading_order(conn, config=slow)[-1] == uid_of(conn, low)
        later = NOW + timedelta(minutes=25)  # LOW waited 725 min; the STATs 26 min (bound 30)
        assert reading_order(conn, now=later, config=slow)[0] == uid_of(conn, low)
        assert items.mark_overdue(conn, slow, later) == 1
        assert items.mark_overdue(conn, slow, later) == 0, "the jump is recorded once"
        item_id = conn.execute(select(_items.c.id).where(_items.c.study_fk == low)).scalar_one()
        jump = items.history(conn, item_id)[-1]
    assert (jump.event, jump.old_rank, jump.new_rank) == ("overdue", 4, 1)
    assert jump.reason.startswith("overdue: waiting 725 min, limit 720 min for LOW")


def test_missing_order_priority_takes_the_configured_default(any_catalog: Engine) -> None:
    config = WorklistConfig(default_priority="HIGH")
    with any_catalog.begin() as conn:
        study = add_study(conn, None, 1, config=config)
        medium = add_study(conn, "MEDIUM", 1, config=config)
        rows = {r.study_fk: r.priority for r in conn.execute(select(_items))}
    assert rows[study] == "HIGH" and rows[medium] == "ROUTINE"


def test_claim_release_complete_and_illegal_transitions(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        first = add_study(conn, "STAT", 3)
        second = add_study(conn, "ROUTINE", 3)
        uid = uid_of(conn, first)
        transaction = items.claim(conn, uid, "dr-ada", None, CONFIG, NOW)
        with pytest.raises(items.WorklistError, match="IN PROGRESS by dr-ada") as refused:
            items.claim(conn, uid, "dr-bob", None, CONFIG, NOW)
        assert http_status(refused.value) == 409
        with pytest.raises(items.NotTheClaimer, match="claimed by dr-ada"):
            items.close(conn, uid, "dr-bob", None, WorkItemState.COMPLETED, CONFIG, NOW)
        with pytest.raises(items.NotTheClaimer, match="Transaction UID"):
            items.close(conn, uid, None, "1.2.3", WorkItemState.COMPLETED, CONFIG, NOW)
        assert reading_order(conn)[0] == uid, "an item being read keeps its place"
        items.release(conn, uid, "dr-ada", None, CONFIG, NOW)
        items.claim(conn, uid, "dr-bob", "1.2.840.99", CONFIG, NOW)
        items.close(conn, uid, None, "1.2.840.99", WorkItemState.COMPLETED, CONFIG, NOW)
        with pytest.raises(items.WorklistError, match="COMPLETED"):
            items.claim(conn, uid, "dr-ada", None, CONFIG, NOW)
        with pytest.raises(items.WorklistError, match="not IN PROGRESS"):
            items.release(conn, uid_of(conn, second), "dr-ada", None, CONFIG, NOW)
        with pytest.raises(items.ItemNotFound):
            items.claim(conn, "1.2.3.4", "dr-ada", None, CONFIG, NOW)
        assert reading_order(conn) == [uid_of(conn, second)], "completed items leave the ranking"
        item_id = conn.execute(select(_items.c.id).where(_items.c.workitem_uid == uid)).scalar_one()
        events = [(e.event, e.old_rank, e.new_rank, e.actor) for e in items.history(conn, item_id)]
    assert transaction.startswith("2.25.")
    assert events == [
        ("created", None, 1, "dicomnode"),
        ("claimed", 1, 1, "dr-ada"),
        ("released", 1, 1, "dr-ada"),
        ("claimed", 1, 1, "dr-bob"),
        ("completed", 1, None, "dr-bob"),
    ]


def test_filters_by_modality_state_and_flag(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        ct = add_study(conn, "ROUTINE", 5)
        dx = add_study(conn, "ROUTINE", 4, modality="DX", description="CHEST PA")
        items.record_ai(conn, dx, [flag("pneumothorax", 0.9, 0.9)], "cxr", "1", CONFIG, NOW)
        items.claim(conn, uid_of(conn, ct), "dr-ada", None, CONFIG, NOW)
        assert reading_order(conn, modality="dx") == [uid_of(conn, dx)]
        assert reading_order(conn, modality="C") == [], "modalities match whole values"
        assert reading_order(conn, flagged=True) == [uid_of(conn, dx)]
        assert reading_order(conn, flagged=False) == [uid_of(conn, ct)]
        assert reading_order(conn, states=(WorkItemState.IN_PROGRESS,)) == [uid_of(conn, ct)]
        ranks = {
            r.workitem_uid: r.rank
            for r in conn.execute(order.ranked(CONFIG.scoring, NOW, filters=order.Filters(modality="CT")))
        }
        assert ranks == {uid_of(conn, ct): 2}, "filtered rows keep their place in the whole worklist"


def test_overdue_jumps_are_recorded_in_short_batches_longest_waiting_first(any_catalog: Engine) -> None:
    with any_catalog.begin() as conn:
        older, newer = add_study(conn, "STAT", 50), add_study(conn, "STAT", 40)
        assert items.mark_overdue(conn, CONFIG, NOW, limit=1) == 1
        first = conn.execute(select(_items.c.study_fk).where(_items.c.overdue_since.is_not(None))).scalars().all()
        assert first == [older]
        assert items.mark_overdue(conn, CONFIG, NOW, limit=1) == 1
        assert items.mark_overdue(conn, CONFIG, NOW, limit=1) == 0
        assert conn.execute(select(_items.c.overdue_since).where(_items.c.study_fk == newer)).scalar() is not None
