"""Worklist items in the catalog: every transition an item can make, in one place.

SCHEDULED --claim--> IN PROGRESS --complete--> COMPLETED
    ^                    |  '------cancel----> CANCELED
    '-------release------'

A completed study becomes a SCHEDULED item (in the transaction that completes
it); AI results change its flags and so its rank, never its state. Each
change an item makes to its own rank, and each state change, is an event with
the old and new rank and the reason, so "why is this study here" has an answer.
Items displaced by one because another moved past them record nothing: that
move is recorded on the item that made it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, insert, select, update

from dicomnode.catalog.db import posix_seconds, utcnow
from dicomnode.catalog.records import modalities_of, requested_priority
from dicomnode.catalog.schema import Study, WorkItem, WorkItemEvent
from dicomnode.catalog.states import OPEN_WORKITEM, WORKITEM_MOVES, WorkItemState, require_move
from dicomnode.config.worklist import WorklistConfig
from dicomnode.dicom.uids import derived_uid
from dicomnode.errors import DicomnodeError
from dicomnode.ops import audit
from dicomnode.routing.priority import PriorityClass
from dicomnode.worklist import order, scoring

_items = WorkItem.__table__
_events = WorkItemEvent.__table__
_studies = Study.__table__
NODE = "dicomnode"  # the actor of changes no reader or model made
# Reports, objects and secondary captures (our own SR, SEG, key images, GSPS and KOS among them).
NON_IMAGE_MODALITIES = frozenset({"SR", "SEG", "KO", "PR", "OT", "DOC", "REG", "RTSTRUCT"})


class WorklistError(DicomnodeError):
    """A request the item's state does not allow."""


class ItemNotFound(WorklistError):
    """No workitem with that UID."""


class NotTheClaimer(WorklistError):
    """The item is claimed by another reader, or the Transaction UID is not the claim's."""


def workitem_uid(called_ae: str, study_instance_uid: str) -> str:
    return derived_uid("workitem", called_ae, study_instance_uid)


def enlist(conn: Connection, study_pk: int, config: WorklistConfig, now: datetime | None = None) -> int:
    """Put a completed study on the worklist (or refresh its order facts when late instances completed it again)."""
    now = now or utcnow()
    study = conn.execute(
        select(
            _studies.c.called_ae,
            _studies.c.study_instance_uid,
            _studies.c.first_received_at,
        ).where(_studies.c.id == study_pk)
    ).one()
    facts = {
        "priority": config.priority(requested_priority(conn, study_pk)).name,
        "modalities": _imaging_modalities(modalities_of(conn, [study_pk]).get(study_pk, ""))[:64],
        "updated_at": now,
    }
    item_id = conn.execute(select(_items.c.id).where(_items.c.study_fk == study_pk)).scalar()
    if item_id is not None:
        conn.execute(update(_items).where(_items.c.id == item_id).values(**facts))
        return item_id
    item_id = conn.execute(
        insert(_items).values(
            study_fk=study_pk,
            workitem_uid=workitem_uid(study.called_ae, study.study_instance_uid),
            state=WorkItemState.SCHEDULED,
            arrived_at=study.first_received_at,
            arrived_s=posix_seconds(study.first_received_at),
            ai_urgency=0.0,
            flags=[],
            **facts,
        )
    ).inserted_primary_key[0]
    add_event(conn, item_id, "created", None, config, now, NODE, "new study: " + explain(conn, item_id, config, now))
    return item_id


def record_ai(
    conn: Connection,
    study_pk: int,
    flags: list[dict[str, Any]],
    model: str,
    model_version: str,
    config: WorklistConfig,
    now: datetime | None = None,
) -> int:
    """Replace this model's flags on the study's item (none: the model found nothing) and record the move.

    `flags`: [{label, probability, urgency, model, model_version, result_uid}], one per reported finding.
    """
    now = now or utcnow()
    item_id = enlist(conn, study_pk, config, now)
    old_rank = order.rank_of(conn, item_id, config.scoring, now)
    current = conn.execute(select(_items.c.flags).where(_items.c.id == item_id)).scalar_one()
    kept = [f for f in current if f["model"] != model] + flags
    urgency = max((f["probability"] * f["urgency"] for f in kept), default=0.0)
    conn.execute(update(_items).where(_items.c.id == item_id).values(flags=kept, ai_urgency=urgency, updated_at=now))
    reason = explain(conn, item_id, config, now)
    if not flags:
        reason = f"AI: nothing found ({model} {model_version}); {reason}"
    add_event(conn, item_id, "ai", old_rank, config, now, f"{model} {model_version}", reason)
    return item_id


def record_no_result(
    conn: Connection,
    study_pk: int,
    event: str,
    actor: str,
    reason: str,
    config: WorklistConfig,
    now: datetime | None = None,
) -> None:
    """A model failed for good, or its scope gate refused the study: the item's history says so and why (its rank
    does not change: no result is not a negative result)."""
    now = now or utcnow()
    item_id = conn.execute(select(_items.c.id).where(_items.c.study_fk == study_pk)).scalar()
    if item_id is None:
        return
    conn.execute(update(_items).where(_items.c.id == item_id).values(updated_at=now))
    add_event(conn, item_id, event, item_rank(conn, item_id, config, now), config, now, actor, reason)


def claim(
    conn: Connection,
    uid: str,
    reader: str,
    transaction_uid: str | None,
    config: WorklistConfig,
    now: datetime | None = None,
) -> str:
    """SCHEDULED -> IN PROGRESS for `reader`; returns the claim's Transaction UID (generated when not given)."""
    now = now or utcnow()
    item = get(conn, uid)
    if item.state != WorkItemState.SCHEDULED:
        holder = f" by {item.claimed_by}" if item.state == WorkItemState.IN_PROGRESS else ""
        raise WorklistError(f"workitem is {item.state}{holder}; only a SCHEDULED workitem can be claimed")
    transaction_uid = transaction_uid or derived_uid("transaction", uid, reader, now.isoformat())
    done = conn.execute(
        update(_items)
        .where(_items.c.id == item.id, _items.c.state == WorkItemState.SCHEDULED)
        .values(
            state=WorkItemState.IN_PROGRESS,
            transaction_uid=transaction_uid,
            claimed_by=reader,
            claimed_at=now,
            updated_at=now,
        )
    ).rowcount
    if not done:  # another claim committed between the read and the update
        raise WorklistError("workitem was claimed by another reader a moment ago")
    add_event(
        conn, item.id, "claimed", item_rank(conn, item.id, config, now), config, now, reader, f"claimed by {reader}"
    )
    audit.record(conn, item.study_fk, reader, "claimed", f"workitem {uid}", at=now)
    return transaction_uid


def release(
    conn: Connection,
    uid: str,
    reader: str | None,
    transaction_uid: str | None,
    config: WorklistConfig,
    now: datetime | None = None,
) -> None:
    """IN PROGRESS -> SCHEDULED: the reader hands the study back, unread."""
    now = now or utcnow()
    item = _claimed(conn, uid, reader, transaction_uid)
    unclaimed = {"transaction_uid": None, "claimed_by": None, "claimed_at": None}
    conn.execute(
        update(_items).where(_items.c.id == item.id).values(state=WorkItemState.SCHEDULED, updated_at=now, **unclaimed)
    )
    rank = item_rank(conn, item.id, config, now)
    add_event(conn, item.id, "released", rank, config, now, item.claimed_by, f"released by {item.claimed_by}")
    audit.record(conn, item.study_fk, item.claimed_by, "released", f"workitem {uid}", at=now)


def close(
    conn: Connection,
    uid: str,
    reader: str | None,
    transaction_uid: str | None,
    state: str,
    config: WorklistConfig,
    now: datetime | None = None,
) -> None:
    """IN PROGRESS -> COMPLETED or CANCELED, by the claim's holder; the item leaves the ranking."""
    if state not in (WorkItemState.COMPLETED, WorkItemState.CANCELED):
        raise WorklistError(f"cannot close a workitem as {state}")
    now = now or utcnow()
    item = _claimed(conn, uid, reader, transaction_uid)
    old_rank = item_rank(conn, item.id, config, now)
    conn.execute(update(_items).where(_items.c.id == item.id).values(state=state, closed_at=now, updated_at=now))
    word = "completed" if state == WorkItemState.COMPLETED else "canceled"
    add_event(conn, item.id, word, old_rank, config, now, item.claimed_by, f"{word} by {item.claimed_by}")
    audit.record(conn, item.study_fk, item.claimed_by, word, f"workitem {uid}", at=now)


UNDO_SECONDS = 60  # how long a reader may take back a completion


def reopen(conn: Connection, uid: str, reader: str, config: WorklistConfig, now: datetime | None = None) -> None:
    """COMPLETED -> IN PROGRESS: the reader who completed the item takes it back within UNDO_SECONDS (a slip of
    the hand); after that, or for anyone else, a completion stands."""
    now = now or utcnow()
    item = get(conn, uid)
    if item.state != WorkItemState.COMPLETED or item.claimed_by != reader:
        raise WorklistError(f"workitem is {item.state}; only its reader can undo a completion")
    if item.closed_at is None or (now - item.closed_at).total_seconds() > UNDO_SECONDS:
        raise WorklistError(f"a completion can be undone for {UNDO_SECONDS} seconds only")
    require_move(WORKITEM_MOVES, item.state, WorkItemState.IN_PROGRESS)
    conn.execute(
        update(_items)
        .where(_items.c.id == item.id, _items.c.state == WorkItemState.COMPLETED)
        .values(state=WorkItemState.IN_PROGRESS, closed_at=None, updated_at=now)
    )
    add_event(conn, item.id, "reopened", None, config, now, reader, f"completion undone by {reader}")
    audit.record(conn, item.study_fk, reader, "reopened", f"workitem {uid}", at=now)


def mark_overdue(conn: Connection, config: WorklistConfig, now: datetime | None = None, limit: int = 50) -> int:
    """Record the jump to the top of each open item that passed its class's maximum wait, longest waiting first,
    at most `limit` per call (a short transaction; the rest at the next call); how many were recorded."""
    now = now or utcnow()
    policy = config.scoring
    rows = conn.execute(
        select(_items.c.id, _items.c.priority, _items.c.arrived_at).where(
            _items.c.state.in_(OPEN_WORKITEM), _items.c.overdue_since.is_(None)
        )
    ).all()
    due = [r for r in rows if (now - r.arrived_at).total_seconds() / 60 > policy.max_wait(PriorityClass[r.priority])]
    due = sorted(due, key=lambda r: r.arrived_at)[:limit]
    for row in due:
        limit = policy.max_wait(PriorityClass[row.priority])
        just_before = row.arrived_at + timedelta(minutes=limit, milliseconds=-1)
        old_rank = order.rank_of(conn, row.id, policy, just_before)
        conn.execute(update(_items).where(_items.c.id == row.id).values(overdue_since=now, updated_at=now))
        add_event(conn, row.id, "overdue", old_rank, config, now, NODE, explain(conn, row.id, config, now))
    return len(due)


def _imaging_modalities(joined: str) -> str:
    """What readers filter by: the image modalities, without reports and objects (our own SR and SEG among them)."""
    found = [m for m in joined.split("/") if m]
    images = [m for m in found if m not in NON_IMAGE_MODALITIES]
    return "/".join(images or found)


def item_rank(conn: Connection, item_id: int, config: WorklistConfig, now: datetime) -> int | None:
    return order.rank_of(conn, item_id, config.scoring, now)


def explain(conn: Connection, item_id: int, config: WorklistConfig, now: datetime) -> str:
    row = conn.execute(select(_items).where(_items.c.id == item_id)).one()
    return scoring.assess(as_scored(row), now, config.scoring).explanation


def as_scored(row: Row) -> scoring.WorkItem:
    """A catalog row (worklist_items columns) as the scoring module sees it."""
    flags = tuple(
        scoring.AIFlag(f["label"], f["probability"], f["urgency"], f["model"], f["model_version"]) for f in row.flags
    )
    return scoring.WorkItem(row.workitem_uid, PriorityClass[row.priority], row.arrived_at, flags)


def history(conn: Connection, item_id: int) -> list[Row]:
    return conn.execute(select(_events).where(_events.c.item_fk == item_id).order_by(_events.c.id)).all()


def add_event(
    conn: Connection,
    item_id: int,
    event: str,
    old_rank: int | None,
    config: WorklistConfig,
    now: datetime,
    actor: str | None,
    reason: str,
) -> None:
    new_rank = item_rank(conn, item_id, config, now)
    conn.execute(
        insert(_events).values(
            item_fk=item_id, at=now, event=event, old_rank=old_rank, new_rank=new_rank, reason=reason, actor=actor
        )
    )


def get(conn: Connection, uid: str) -> Row:
    """The item with that workitem UID, or ItemNotFound."""
    row = conn.execute(select(_items).where(_items.c.workitem_uid == uid)).first()
    if row is None:
        raise ItemNotFound(f"no workitem {uid}")
    return row


def _claimed(conn: Connection, uid: str, reader: str | None, transaction_uid: str | None) -> Row:
    """The item, if it is IN PROGRESS and the caller holds the claim (same reader, or same Transaction UID)."""
    item = get(conn, uid)
    if item.state != WorkItemState.IN_PROGRESS:
        raise WorklistError(f"workitem is {item.state}, not IN PROGRESS")
    if transaction_uid is not None and transaction_uid != item.transaction_uid:
        raise NotTheClaimer("the Transaction UID does not match the workitem's claim")
    if transaction_uid is None and reader != item.claimed_by:
        raise NotTheClaimer(f"workitem is claimed by {item.claimed_by}")
    return item
