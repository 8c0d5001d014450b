"""Completed studies join the worklist (and the audit trail says who sent them) in the transaction that completes
them, before routing runs."""

from __future__ import annotations

from sqlalchemy import Connection

from dicomnode.assembly.hooks import CompletedStudy, CompletionHook
from dicomnode.config.worklist import WorklistConfig
from dicomnode.ops import audit
from dicomnode.worklist import items


class EnlistingHook:
    def __init__(self, routing: CompletionHook, config: WorklistConfig) -> None:
        self._routing = routing
        self._config = config

    def study_completed(self, conn: Connection, study: CompletedStudy) -> None:
        items.enlist(conn, study.study_pk, self._config)
        audit.record_received(conn, study.study_pk)
        self._routing.study_completed(conn, study)

    def after_commit(self, study: CompletedStudy) -> None:
        self._routing.after_commit(study)
