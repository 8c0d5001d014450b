"""Worklist ranking: class, AI urgency, aging, the starvation bound, explanations, arrival order."""

from __future__ import annotations

from datetime import datetime, timedelta

from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist.scoring import AIFlag, ScoringPolicy, WorkItem, rank

NOW = datetime(2026, 11, 22, 12, 0, 0)
POLICY = ScoringPolicy()
ICH = AIFlag("intracranial hemorrhage", 0.97, 1.0, "ct-hemorrhage", "0.2.0")


def item(key: str, priority: PriorityClass, minutes_ago: float, *flags: AIFlag) -> WorkItem:
    return WorkItem(key, priority, NOW - timedelta(minutes=minutes_ago), flags)


def order(*items: WorkItem, **kwargs) -> list[str]:  # noqa: ANN003
    return [r.item.key for r in rank(items, NOW, POLICY, **kwargs)]


def test_clinical_class_orders_items_without_ai() -> None:
    assert order(
        item("low", PriorityClass.LOW, 5),
        item("stat", PriorityClass.STAT, 1),
        item("routine", PriorityClass.ROUTINE, 5),
    ) == ["stat", "routine", "low"]


def test_a_critical_ai_finding_lifts_a_routine_study_above_a_clean_stat() -> None:
    ranked = rank([item("stat", PriorityClass.STAT, 2), item("bleed", PriorityClass.ROUTINE, 1, ICH)], NOW, POLICY)
    assert [r.item.key for r in ranked] == ["bleed", "stat"]
    top = ranked[0]
    assert top.explanation == "AI: intracranial hemorrhage p=0.97 (ct-hemorrhage 0.2.0); ROUTINE order; waiting 1 min"
    assert top.parts["ai"] == 0.97 * 80 and top.rank == 1


def test_urgency_weight_scales_the_ai_part() -> None:
    mild = AIFlag("minor", 0.97, 0.1, "m", "1")
    assert order(item("stat", PriorityClass.STAT, 2), item("mild", PriorityClass.ROUTINE, 1, mild)) == ["stat", "mild"]


def test_aging_moves_a_long_waiting_item_up_within_the_bound() -> None:
    assert order(item("new-routine", PriorityClass.ROUTINE, 0), item("old-low", PriorityClass.LOW, 100)) == [
        "old-low",
        "new-routine",
    ]  # 10 + 25 > 30


def test_no_routine_study_starves_behind_a_stream_of_urgent_ones() -> None:
    routine = item("routine", PriorityClass.ROUTINE, 241)  # past the 240 min bound
    urgent = [item(f"stat-{i}", PriorityClass.STAT, 0, ICH) for i in range(50)]
    ranked = rank([*urgent, routine], NOW, POLICY)
    assert ranked[0].item.key == "routine" and ranked[0].overdue_minutes > 0
    assert ranked[0].explanation.startswith("overdue: waiting 241 min, limit 240 min for ROUTINE")
    just_within = item("routine", PriorityClass.ROUTINE, 239)
    assert rank([*urgent, just_within], NOW, POLICY)[0].item.key != "routine"


def test_longest_overdue_goes_first_and_arrival_order_is_available() -> None:
    a = item("a", PriorityClass.LOW, 800)  # 80 min overdue
    b = item("b", PriorityClass.STAT, 100, ICH)  # 70 min overdue
    c = item("c", PriorityClass.ROUTINE, 5, ICH)
    assert order(a, b, c) == ["a", "b", "c"]
    assert order(c, b, a, order="arrival") == ["a", "b", "c"]
    assert order(item("x", PriorityClass.LOW, 1), item("y", PriorityClass.STAT, 2), order="arrival") == ["y", "x"]


def test_the_ai_never_removes_an_item() -> None:
    items = [
        item(f"s{i}", PriorityClass(p), i, *([ICH] if i % 3 == 0 else []))
        for i, p in zip(range(30), [0, 3, 6, 9] * 8, strict=False)
    ]
    ranked = rank(items, NOW, POLICY)
    assert sorted(r.item.key for r in ranked) == sorted(i.key for i in items)
    assert [r.rank for r in ranked] == list(range(1, 31))
