"""Finding items for a client: the one place the REST list and UPS-RS search get their rows from."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI, HTTPException

from dicomnode.worklist import order
from dicomnode.worklist.snapshot import is_open_only

# Paging bounds for every listing: past them a request is refused (422 REST, 400 UPS-RS), not sent to SQL,
# where an offset beyond 64 bits would fail as a server error.
MAX_LIMIT = 10_000
MAX_OFFSET = 1_000_000


def find(
    app: FastAPI, how: order.Order, filters: order.Filters, limit: int, offset: int, now: datetime
) -> tuple[list[Any], int]:
    """A page of items in reading order and the number matching: open items from the shared ranking snapshot,
    closed ones (no rank) straight from the catalog."""
    if is_open_only(filters):
        return app.state.view.page(how, filters, limit, offset, now)
    query = order.ranked(app.state.settings.worklist.scoring, now, how, filters).limit(limit).offset(offset)
    with app.state.catalog.connect() as conn:
        rows = conn.execute(query).all()
    return rows, rows[0].total if rows else 0


def one(app: FastAPI, uid: str, now: datetime) -> Any:
    """One item by workitem UID, open (with its rank, from the snapshot) or closed (rank None); 404 if unknown."""
    rows, _ = app.state.view.page("urgency", order.Filters(workitem_uid=uid), 1, 0, now)
    if rows:
        return rows[0]
    with app.state.catalog.connect() as conn:
        row = conn.execute(order.detail_query().where(order.ITEMS.c.workitem_uid == uid)).first()
    if row is None:
        raise HTTPException(404, f"no workitem {uid}")
    return SimpleNamespace(**row._mapping, rank=None)
