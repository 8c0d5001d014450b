"""Sends the outbox: due exports go to their destinations over one association per destination and round.

It polls the catalog (workers in other processes fill the outbox), so it needs
no broker; `dicomnode send` uses the same SCU code (dicomnode/scu.py).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from sqlalchemy import Engine

from dicomnode.catalog.schema import Export, ExportState
from dicomnode.config.settings import ExportConfig
from dicomnode.dicom.scu import Destination, SendResult, send_files
from dicomnode.export import dicom as exports
from dicomnode.export import outbox
from dicomnode.receive.storage import Storage

log = logging.getLogger(__name__)


class Exporter(outbox.OutboxSender):
    def __init__(self, catalog: Engine, storage: Storage, policy: ExportConfig, calling_ae: str) -> None:
        super().__init__("exporter", catalog, Export.__table__, policy, policy.timeout_s + 5)
        self._storage = storage
        self._policy = policy
        self._calling_ae = calling_ae
        self._tls = policy.tls_context()

    def send_due(self) -> int:
        with self._catalog.begin() as conn:
            due = exports.claim_due(conn)
        by_destination: dict[str, list[exports.Send]] = defaultdict(list)
        for send in due:
            by_destination[send.destination].append(send)
        for destination, sends in by_destination.items():
            self._send(destination, sends)
        return len(due)

    def _send(self, destination: str, sends: list[exports.Send]) -> None:
        paths = {self._storage.absolute(s.path): s for s in sends}
        try:
            results = send_files(list(paths), Destination.parse(destination, self._tls), self._calling_ae,
                                 timeout_s=self._policy.timeout_s)  # fmt: skip
        except Exception as exc:  # a bug or a malformed destination must not lose the rows: record and retry
            results = [
                SendResult(p, s.sop_instance_uid, None, f"{type(exc).__name__}: {exc}") for p, s in paths.items()
            ]
        with self._catalog.begin() as conn:
            for result in results:
                send = paths[result.path]
                if result.ok:
                    exports.mark_sent(conn, send, result.status or 0)
                    log.info("export sent id=%d to=%s attempt=%d", send.id, destination, send.attempt)
                    continue
                message = _failure(result)
                state = exports.record_failure(conn, send, message, result.status, self._policy)
                level = logging.ERROR if state == ExportState.DEAD else logging.WARNING
                log.log(level, "export id=%d to=%s attempt=%d %s: %s", send.id, destination, send.attempt,
                        "dead" if state == ExportState.DEAD else "will retry", message)  # fmt: skip


def _failure(result: SendResult) -> str:
    """Tell apart a peer that was not reached from one that answered with a failure."""
    if result.status is None:
        return f"not delivered (destination unreachable, association refused or no answer): {result.error}"
    comment = f" ({result.error})" if result.error else ""
    return f"destination answered failure status 0x{result.status:04X}{comment}"
