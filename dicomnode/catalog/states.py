"""Every state a catalog row can be in, and the moves between them, written as tables next to the states.

The functions that move rows (assembly, jobs/lifecycle.py, export/outbox.py, worklist/items.py) check the
table before they write, so a move that is not in a table is a bug that raises instead of a row in a state
no one expects.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from dicomnode.errors import DicomnodeError

S = TypeVar("S", bound=StrEnum)


class StudyState(StrEnum):
    OPEN = "open"  # instances may still arrive
    COMPLETE = "complete"  # quiet for study_quiet_seconds; handed to its completion hook


STUDY_MOVES: Mapping[StudyState, frozenset[StudyState]] = {
    StudyState.OPEN: frozenset({StudyState.COMPLETE}),
    StudyState.COMPLETE: frozenset({StudyState.OPEN}),  # a late instance reopens it
}


class StudyAnalysis(StrEnum):
    NO_RULE = "no rule"  # complete, matched no routing rule: visibly not analysed
    ROUTED = "routed"  # jobs were created; their states tell the rest


class JobState(StrEnum):
    PENDING = "pending"  # waiting for a worker (published or due to be)
    RUNNING = "running"  # claimed by a worker that keeps heartbeat_at fresh
    DONE = "done"
    FAILED = "failed"  # permanent error, or the last attempt failed
    OUT_OF_SCOPE = "out of scope"  # the scope gate refused the study: the model was not run, nothing was guessed


JOB_MOVES: Mapping[JobState, frozenset[JobState]] = {
    JobState.PENDING: frozenset({JobState.RUNNING}),  # claimed
    # finished; an error with attempts left or a dead worker (re-queued); the study completed again; failed;
    # refused by the scope gate
    JobState.RUNNING: frozenset({JobState.DONE, JobState.PENDING, JobState.FAILED, JobState.OUT_OF_SCOPE}),
    JobState.DONE: frozenset({JobState.PENDING}),  # the study completed again (late instances)
    JobState.FAILED: frozenset({JobState.PENDING}),  # retried by hand, or the study completed again
    JobState.OUT_OF_SCOPE: frozenset({JobState.PENDING}),  # retried by hand, or the study completed again
}


class JobOutcome(StrEnum):
    """How one run of the analysis task ended (what the task returns)."""

    DONE = "done"
    RETRY = "retry"  # failed; the job is pending again after its backoff
    FAILED = "failed"  # failed for good
    OUT_OF_SCOPE = "out of scope"  # the scope gate refused the study
    SKIPPED = "skipped"  # not claimable: finished, running elsewhere, or not due
    LOST = "lost"  # the claim was lost while it ran; its result was discarded


class OutboxState(StrEnum):
    """A send in an outbox (DICOM exports, webhook notifications)."""

    PENDING = "pending"  # waiting to be sent, or to be retried after not_before
    SENDING = "sending"  # claimed by a sender; taken back at start-up after a crash
    SENT = "sent"
    DEAD = "dead"  # last attempt failed, or the destination refused for good; retried by hand


OUTBOX_MOVES: Mapping[OutboxState, frozenset[OutboxState]] = {
    OutboxState.PENDING: frozenset({OutboxState.SENDING}),
    # delivered; failed with attempts left or taken back after a crash; failed for good
    OutboxState.SENDING: frozenset({OutboxState.SENT, OutboxState.PENDING, OutboxState.DEAD}),
    OutboxState.SENT: frozenset({OutboxState.PENDING}),  # a re-run of the result re-arms it
    OutboxState.DEAD: frozenset({OutboxState.PENDING}),  # retried by hand, or re-armed by a re-run
}
UNSENT = (OutboxState.PENDING, OutboxState.SENDING)


class OrderStatus(StrEnum):
    """An order from the RIS (HL7 ORC-1 order control)."""

    SCHEDULED = "scheduled"  # new (NW) or changed (XO, SC)
    CANCELLED = "cancelled"  # cancelled or discontinued (CA, OC, DC)


class WorkItemState(StrEnum):
    """UPS Procedure Step State values (PS3.4 CC.1.1)."""

    SCHEDULED = "SCHEDULED"
    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELED = "CANCELED"


WORKITEM_MOVES: Mapping[WorkItemState, frozenset[WorkItemState]] = {
    # claimed; or the RIS cancelled its order (HL7), which needs no claim
    WorkItemState.SCHEDULED: frozenset({WorkItemState.IN_PROGRESS, WorkItemState.CANCELED}),
    WorkItemState.IN_PROGRESS: frozenset(
        {WorkItemState.SCHEDULED, WorkItemState.COMPLETED, WorkItemState.CANCELED}  # released, completed, canceled
    ),
    WorkItemState.COMPLETED: frozenset({WorkItemState.IN_PROGRESS}),  # undone by its reader within a minute
    WorkItemState.CANCELED: frozenset(),
}
OPEN_WORKITEM = (WorkItemState.SCHEDULED, WorkItemState.IN_PROGRESS)  # on the worklist and ranked


class IllegalMove(DicomnodeError, RuntimeError):
    """A transition that is not in its state table: a bug, never a user error."""


def require_move(moves: Mapping[S, frozenset[S]], old: S | str, new: S) -> None:
    """Raise IllegalMove unless `old -> new` is in `moves`."""
    if new not in moves[type(new)(old)]:
        raise IllegalMove(f"{type(new).__name__}: {old} -> {new} is not an allowed move")


def sources(moves: Mapping[S, frozenset[S]], new: S) -> tuple[S, ...]:
    """Every state from which `new` may be reached: what an UPDATE's WHERE clause allows."""
    return tuple(old for old, targets in moves.items() if new in targets)
