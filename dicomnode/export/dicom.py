"""Results to PACS: the DICOM export outbox and its sender.

One row per result instance and destination, armed in the transaction that stores the result; its
transitions are the shared outbox's (export/outbox.py). The Exporter sends due rows over one association
per destination and round; it polls the catalog (workers in other processes fill the outbox), so it needs
no broker. `dicomnode send` uses the same SCU code (dicom/scu.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Export, Instance, Study
from dicomnode.catalog.states import OutboxState
from dicomnode.config.export import ExportConfig, ResultKind
from dicomnode.dicom import status as dimse
from dicomnode.dicom.scu import Destination, SendResult, send_files
from dicomnode.export import outbox
from dicomnode.ops import audit
from dicomnode.receive.storage import Storage
from dicomnode.results.store import StoredInstance, kind_of_class

log = logging.getLogger(__name__)
_exports = Export.__table__
_studies = Study.__table__
_instances = Instance.__table__


@dataclass(frozen=True)
class Send:
    id: int
    study_pk: int
    sop_instance_uid: str
    path: str
    destination: str
    attempt: int


def enqueue(
    conn: Connection,
    study_pk: int,
    result_uid: str,
    instances: list[StoredInstance],
    destinations: list[str],
    kinds_for: Callable[[str], set[ResultKind]],
) -> int:
    """Arm a send of each instance to each destination that takes its kind; a re-run re-arms the same rows.
    The number armed."""
    now = utcnow()
    armed = 0
    for sop_uid, path, kind in instances:
        for destination in destinations:
            if kind not in kinds_for(destination):
                continue
            armed += 1
            stmt = insert_for(conn.dialect.name, _exports).values(
                study_fk=study_pk,
                result_uid=result_uid,
                sop_instance_uid=sop_uid,
                path=path,
                destination=destination,
                state=OutboxState.PENDING,
                attempts=0,
                not_before=now,
                created_at=now,
            )
            rearm = {**outbox.rearmed(now), "path": path}
            conn.execute(stmt.on_conflict_do_update(index_elements=["sop_instance_uid", "destination"], set_=rearm))
    return armed


def claim_due(conn: Connection, limit: int = 200) -> list[Send]:
    """Take due pending sends (state sending, attempts + 1), oldest first."""
    c = _exports.c
    columns = [c.id, c.study_fk, c.sop_instance_uid, c.path, c.destination, c.attempts]
    rows = outbox.claim_due(conn, _exports, columns, limit)
    return [Send(*row) for row in rows]


def mark_sent(conn: Connection, send: Send, status: int) -> None:
    outbox.mark_sent(conn, _exports, send.id, status)
    audit.record(conn, send.study_pk, send.destination, "exported", f"{send.sop_instance_uid} (attempt {send.attempt})")


def record_failure(conn: Connection, send: Send, message: str, status: int | None, policy: ExportConfig) -> OutboxState:
    """Back off and retry, or give up (dead) after the last attempt or a permanent refusal; the new state."""
    permanent = dimse.is_permanent_failure(status)
    return outbox.record_failure(conn, _exports, send.id, send.attempt, message, status, permanent, policy)


def retry_dead(conn: Connection, export_id: int) -> bool:
    return outbox.retry_dead(conn, _exports, export_id)


@dataclass(frozen=True)
class ExportSummary:
    id: int
    study_instance_uid: str
    sop_instance_uid: str
    kind: str  # sr, seg, sc, gsps, kos: each kind is a send of its own, tracked on its own
    destination: str
    state: str
    attempts: int
    not_before: datetime
    last_error: str | None
    sent_at: datetime | None


def list_exports(conn: Connection, state: str | None = None, limit: int = 500) -> list[ExportSummary]:
    query = (
        select(
            _exports.c.id,
            _studies.c.study_instance_uid,
            _exports.c.sop_instance_uid,
            _instances.c.sop_class_uid,
            _exports.c.destination,
            _exports.c.state,
            _exports.c.attempts,
            _exports.c.not_before,
            _exports.c.last_error,
            _exports.c.sent_at,
        )
        .join(_studies, _studies.c.id == _exports.c.study_fk)
        .outerjoin(_instances, _instances.c.sop_instance_uid == _exports.c.sop_instance_uid)
        .order_by(_exports.c.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(_exports.c.state == state)
    return [
        ExportSummary(row[0], row[1], row[2], kind_of_class(row[3]) if row[3] else "?", *row[4:])
        for row in conn.execute(query)
    ]


class Exporter(outbox.OutboxSender):
    def __init__(self, catalog: Engine, storage: Storage, policy: ExportConfig, calling_ae: str) -> None:
        super().__init__("exporter", catalog, Export.__table__, policy, policy.timeout_s + 5)
        self._storage = storage
        self._policy = policy
        self._calling_ae = calling_ae
        self._tls = policy.tls_context()

    def send_due(self) -> int:
        with self._catalog.begin() as conn:
            due = claim_due(conn)
        by_destination: dict[str, list[Send]] = defaultdict(list)
        for send in due:
            by_destination[send.destination].append(send)
        for destination, sends in by_destination.items():
            self._send(destination, sends)
        return len(due)

    def _send(self, destination: str, sends: list[Send]) -> None:
        paths = {self._storage.absolute(s.path): s for s in sends}
        try:
            results = send_files(
                list(paths),
                Destination.parse(destination, self._tls),
                self._calling_ae,
                timeout_s=self._policy.timeout_s,
            )
        except Exception as exc:  # a bug or a malformed destination must not lose the rows: record and retry
            results = [
                SendResult(p, s.sop_instance_uid, None, f"{type(exc).__name__}: {exc}") for p, s in paths.items()
            ]
        with self._catalog.begin() as conn:
            for result in results:
                send = paths[result.path]
                if result.ok:
                    mark_sent(conn, send, result.status or 0)
                    log.info("export sent id=%d to=%s attempt=%d", send.id, destination, send.attempt)
                    continue
                message = _failure(result)
                state = record_failure(conn, send, message, result.status, self._policy)
                level = logging.ERROR if state == OutboxState.DEAD else logging.WARNING
                log.log(
                    level,
                    "export id=%d to=%s attempt=%d %s: %s",
                    send.id,
                    destination,
                    send.attempt,
                    "dead" if state == OutboxState.DEAD else "will retry",
                    message,
                )


def _failure(result: SendResult) -> str:
    """Tell apart a peer that was not reached from one that answered with a failure."""
    if result.status is None:
        return f"not delivered (destination unreachable, association refused or no answer): {result.error}"
    comment = f" ({result.error})" if result.error else ""
    return f"destination answered failure status {dimse.hex_code(result.status)}{comment}"
