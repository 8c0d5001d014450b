"""The outbox pattern both senders share (DICOM exports, webhook notifications): every transition in one place.

pending --claim--> sending --peer accepted--> sent
                      |--peer down, or a failure worth retrying, attempts left--> pending (after backoff)
                      '--last attempt, or a refusal that retrying cannot fix--> dead --retry by hand--> pending

Rows are created in the transaction that makes what they send, so nothing is
ever without its sends; a node restart takes back rows left `sending`. A table
is an outbox when it has the columns id, state, attempts, not_before,
last_error, last_status and sent_at.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, Table, select, update

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.states import OutboxState
from dicomnode.config.export import OutboxPolicy
from dicomnode.service import Service

log = logging.getLogger(__name__)


def claim_due(conn: Connection, table: Table, columns: list[Any], limit: int = 200) -> list[Row]:
    """Take due pending rows (state sending, attempts + 1), oldest first; `columns` are returned, sorted by id."""
    now = utcnow()
    ids = (
        conn.execute(
            select(table.c.id)
            .where(table.c.state == OutboxState.PENDING, table.c.not_before <= now)
            .order_by(table.c.not_before, table.c.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    if not ids:
        return []
    rows = conn.execute(
        update(table)
        .where(table.c.id.in_(ids), table.c.state == OutboxState.PENDING)
        .values(state=OutboxState.SENDING, attempts=table.c.attempts + 1)
        .returning(table.c.id, *columns)
    ).all()
    return [row[1:] for row in sorted(rows, key=lambda r: r[0])]


def mark_sent(conn: Connection, table: Table, row_id: int, status: int) -> None:
    conn.execute(
        update(table)
        .where(table.c.id == row_id)
        .values(state=OutboxState.SENT, sent_at=utcnow(), last_status=status, last_error=None)
    )


def record_failure(
    conn: Connection,
    table: Table,
    row_id: int,
    attempt: int,
    message: str,
    status: int | None,
    permanent: bool,
    policy: OutboxPolicy,
) -> OutboxState:
    """Back off and retry, or give up (dead) after the last attempt or a permanent refusal; the new state."""
    if permanent or attempt >= policy.max_attempts:
        conn.execute(
            update(table)
            .where(table.c.id == row_id)
            .values(state=OutboxState.DEAD, last_error=message, last_status=status)
        )
        return OutboxState.DEAD
    conn.execute(
        update(table)
        .where(table.c.id == row_id)
        .values(
            state=OutboxState.PENDING,
            last_error=message,
            last_status=status,
            not_before=utcnow() + timedelta(seconds=policy.retry_delay_s(attempt)),
        )
    )
    return OutboxState.PENDING


def rearmed(now: datetime) -> dict[str, Any]:
    """The values that put a row back to a fresh pending send (a re-run of its result re-arms it)."""
    return {
        "state": OutboxState.PENDING,
        "attempts": 0,
        "not_before": now,
        "last_error": None,
        "last_status": None,
        "sent_at": None,
    }


def take_back_sending(conn: Connection, table: Table) -> int:
    """At start-up: rows a crashed node left `sending` go back to pending (the peer may get one twice)."""
    return conn.execute(
        update(table).where(table.c.state == OutboxState.SENDING).values(state=OutboxState.PENDING)
    ).rowcount


def retry_dead(conn: Connection, table: Table, row_id: int) -> bool:
    result = conn.execute(
        update(table)
        .where(table.c.id == row_id, table.c.state == OutboxState.DEAD)
        .values(state=OutboxState.PENDING, attempts=0, not_before=utcnow())
    )
    return result.rowcount == 1


class OutboxSender(Service):
    """A node service that polls the catalog (workers in other processes fill outboxes) and sends what is due."""

    def __init__(self, name: str, catalog: Engine, table: Table, policy: OutboxPolicy, stop_timeout_s: float) -> None:
        super().__init__(name, interval_s=policy.poll_seconds, join_timeout_s=stop_timeout_s)
        self._catalog = catalog
        self._table = table

    def reconcile(self) -> None:
        with self._catalog.begin() as conn:
            taken = take_back_sending(conn, self._table)
        if taken:
            log.warning("%s: resuming %d sends interrupted by the last stop", self.name, taken)

    def run_round(self) -> bool:
        return bool(self.send_due())

    def send_due(self) -> int:
        """One round: claim what is due, send it, record each outcome. Returns how many were tried."""
        raise NotImplementedError
