"""What happens when a study completes: the protocol the routing stage implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import Connection


@dataclass(frozen=True)
class CompletedStudy:
    study_pk: int
    called_ae: str
    study_instance_uid: str
    completion_count: int  # 1 the first time; higher when late instances reopened it


class CompletionHook(Protocol):
    def study_completed(self, conn: Connection, study: CompletedStudy) -> None:
        """Called inside the transaction that marks the study complete.

        Write job rows through `conn` so that completion and the work it
        creates commit together; raise to leave the study open for the next
        round.
        """

    def after_commit(self, study: CompletedStudy) -> None:
        """Called once the completion (and whatever `study_completed` wrote) is committed."""
