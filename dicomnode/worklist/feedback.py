"""Reader feedback on AI flags: agree, disagree or unsure, with an optional comment. Recorded with the reader's
token name and time, in the audit trail and the item's history, counted per model version. It never changes the
rank: the AI moved the item, the reader's opinion of the AI does not move it back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, select, update

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Feedback, WorkItem
from dicomnode.config.worklist import WorklistConfig
from dicomnode.ops import audit
from dicomnode.worklist import items

_feedback, _items = Feedback.__table__, WorkItem.__table__
MAX_COMMENT = 2000


class Verdict(StrEnum):
    AGREE = "agree"
    DISAGREE = "disagree"
    UNSURE = "unsure"


class FlagNotFound(items.ItemNotFound):
    """The item carries no such AI flag (it may have been replaced by a newer result)."""


@dataclass(frozen=True)
class Assessment:
    result_uid: str | None  # None: the item's one flag with this label
    label: str
    verdict: Verdict
    comment: str | None = None


def record(
    conn: Connection, uid: str, reader: str, assessment: Assessment, config: WorklistConfig, now: datetime | None = None
) -> dict[str, Any]:
    """Record (or replace) `reader`'s assessment of one of the item's flags; returns it as stored."""
    now = now or utcnow()
    item = items.get(conn, uid)
    flag = _flag(item.flags, assessment)
    comment = (assessment.comment or "").strip()[:MAX_COMMENT] or None
    values = {"verdict": assessment.verdict, "comment": comment, "at": now, "item_fk": item.id}
    stmt = insert_for(conn.dialect.name, _feedback).values(
        study_fk=item.study_fk,
        result_uid=flag["result_uid"],
        label=assessment.label,
        model=flag["model"],
        model_version=flag["model_version"],
        reader=reader,
        **values,
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["result_uid", "label", "reader"], set_=values))
    conn.execute(update(_items).where(_items.c.id == item.id).values(updated_at=now))
    about = f"AI {assessment.label!r} ({flag['model']} {flag['model_version']})"
    reason = f"{reader}: {assessment.verdict} with {about}" + (f": {comment}" if comment else "")
    rank = items.item_rank(conn, item.id, config, now)
    items.add_event(conn, item.id, "feedback", rank, config, now, reader, reason)
    audit.record(conn, item.study_fk, reader, "feedback", f"{assessment.verdict} with {about}", at=now)
    return {
        "label": assessment.label,
        "result_uid": flag["result_uid"],
        "verdict": assessment.verdict,
        "comment": comment,
        "reader": reader,
        "at": now.isoformat(timespec="seconds") + "Z",
    }


def _flag(flags: list[dict[str, Any]], assessment: Assessment) -> dict[str, Any]:
    """The one flag the assessment is about: its label, and its result when given."""
    matching = [f for f in flags if f["label"] == assessment.label and assessment.result_uid in (None, f["result_uid"])]
    if len(matching) != 1:
        found = ", ".join(sorted({f["label"] for f in flags})) or "none"
        raise FlagNotFound(f"{len(matching)} flags match {assessment.label!r} (flags: {found}); name one by its result")
    return matching[0]


def by_item(conn: Connection, item_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """The feedback on each item's flags, oldest first."""
    found: dict[int, list[dict[str, Any]]] = {i: [] for i in item_ids}
    if not item_ids:
        return found
    rows = conn.execute(select(_feedback).where(_feedback.c.item_fk.in_(item_ids)).order_by(_feedback.c.id)).all()
    for r in rows:
        found[r.item_fk].append(
            {
                "label": r.label,
                "result_uid": r.result_uid,
                "verdict": r.verdict,
                "comment": r.comment,
                "reader": r.reader,
                "at": r.at.isoformat(timespec="seconds") + "Z",
            }
        )
    return found


def agreement(conn: Connection) -> list[tuple[str, str, str, int]]:
    """(model, model version, verdict, count) over all recorded feedback."""
    f = _feedback.c
    query = select(f.model, f.model_version, f.verdict, func.count()).group_by(f.model, f.model_version, f.verdict)
    return [tuple(r) for r in conn.execute(query).all()]  # type: ignore[misc]
