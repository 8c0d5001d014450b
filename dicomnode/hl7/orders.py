"""Orders from the RIS in the catalog: one row per accession number, and what an order does to the studies that
carry it.

A new or changed order is recorded; studies already on the worklist with its accession take its priority (the
change is an event in the item's history, by the RIS). A study that arrives later takes the order's priority
when it completes (catalog/records.requested_priority). A cancelled order cancels the open worklist items of
its studies, by the RIS, recorded as such.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select, update

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Order, Study, WorkItem
from dicomnode.catalog.states import OPEN_WORKITEM, WORKITEM_MOVES, OrderStatus, WorkItemState, require_move
from dicomnode.config.worklist import WorklistConfig
from dicomnode.hl7.messages import OrderMessage
from dicomnode.ops import audit
from dicomnode.worklist import items

_orders = Order.__table__
_studies = Study.__table__
_items = WorkItem.__table__
RIS = "RIS"  # the actor of changes the RIS made


@dataclass(frozen=True)
class Applied:
    """What one order message changed: the worklist items it re-prioritised or cancelled."""

    status: OrderStatus
    reprioritised: int
    cancelled: int


def record_order(conn: Connection, order: OrderMessage, config: WorklistConfig, now: datetime | None = None) -> Applied:
    now = now or utcnow()
    status = OrderStatus.CANCELLED if order.cancelled else OrderStatus.SCHEDULED
    values = {
        "placer_order_number": order.placer_order_number or None,
        "filler_order_number": order.filler_order_number or None,
        "procedure_code": order.procedure_code[:64] or None,
        "procedure_text": order.procedure_text[:200] or None,
        "patient_id": order.patient_id[:64] or None,
        "patient_name": order.patient_name[:324] or None,
        "ordering_provider": order.ordering_provider[:200] or None,
        "status": status,
        "sender": order.sender[:200],
        "control_id": order.header.control_id[:64],
        "updated_at": now,
    }
    if order.priority is not None:  # a change that does not restate the priority keeps the one we have
        values |= {"priority": order.priority, "hl7_priority": order.hl7_priority[:16]}
    stmt = insert_for(conn.dialect.name, _orders).values(
        accession_number=order.accession_number, received_at=now, **values
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["accession_number"], set_=values))
    if status is OrderStatus.CANCELLED:
        return Applied(status, 0, _cancel_items(conn, order, config, now))
    return Applied(status, _reprioritise_items(conn, order, config, now), 0)


def _open_items(conn: Connection, accession: str) -> list:
    return conn.execute(
        select(_items.c.id, _items.c.workitem_uid, _items.c.state, _items.c.priority, _items.c.study_fk)
        .join(_studies, _studies.c.id == _items.c.study_fk)
        .where(_studies.c.accession_number == accession, _items.c.state.in_(OPEN_WORKITEM))
    ).all()


def _reprioritise_items(conn: Connection, order: OrderMessage, config: WorklistConfig, now: datetime) -> int:
    changed = 0
    for item in _open_items(conn, order.accession_number):
        new = config.priority(order.priority).name if order.priority else None
        if new is None or new == item.priority:
            continue
        old_rank = items.item_rank(conn, item.id, config, now)
        conn.execute(update(_items).where(_items.c.id == item.id).values(priority=new, updated_at=now))
        reason = f"RIS order {order.order_control}: priority {item.priority} -> {new}"
        items.add_event(conn, item.id, "order", old_rank, config, now, RIS, reason)
        audit.record(conn, item.study_fk, f"{RIS} {order.sender}", "order", reason, at=now)
        changed += 1
    return changed


def _cancel_items(conn: Connection, order: OrderMessage, config: WorklistConfig, now: datetime) -> int:
    cancelled = 0
    for item in _open_items(conn, order.accession_number):
        require_move(WORKITEM_MOVES, item.state, WorkItemState.CANCELED)
        old_rank = items.item_rank(conn, item.id, config, now)
        conn.execute(
            update(_items)
            .where(_items.c.id == item.id)
            .values(state=WorkItemState.CANCELED, closed_at=now, updated_at=now)
        )
        reason = f"order cancelled by the RIS ({order.order_control})"
        if item.state == WorkItemState.IN_PROGRESS:
            reason += "; it was being read"
        items.add_event(conn, item.id, "canceled", old_rank, config, now, RIS, reason)
        audit.record(conn, item.study_fk, f"{RIS} {order.sender}", "canceled", reason, at=now)
        cancelled += 1
    return cancelled


def order_for_study(conn: Connection, study_pk: int) -> Order | None:
    """The RIS order matching the study's accession number, as a row (None when there is none)."""
    return conn.execute(
        select(_orders)
        .join(_studies, _studies.c.accession_number == _orders.c.accession_number)
        .where(_studies.c.id == study_pk)
    ).first()
