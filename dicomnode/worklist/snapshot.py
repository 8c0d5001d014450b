"""The ranking of all open items, computed once per change and shared by every list request.

Ranking 10,000 items costs tens of milliseconds in SQL; readers ask far more often than the worklist changes.
A snapshot is taken with order.ranked_ids (the same SQL order as everything else) and kept until the watcher's
version moves (any committed change, from any process) or the next open item passes its maximum wait (the only
thing that reorders items with time). Pages are cut from it and only their rows are read in full.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, select

from dicomnode.catalog.db import posix_seconds
from dicomnode.catalog.schema import Study
from dicomnode.catalog.states import OPEN_WORKITEM
from dicomnode.worklist import order
from dicomnode.worklist.scoring import ScoringPolicy
from dicomnode.worklist.watcher import WorklistWatcher


@dataclass(frozen=True)
class Entry:
    id: int
    rank: int
    state: str
    priority: str
    modalities: frozenset[str]
    flagged: bool
    ai_status: str


@dataclass(frozen=True)
class Snapshot:
    version: int
    valid_until_s: float  # the next moment an open item becomes overdue
    entries: list[Entry]


class RankedView:
    def __init__(self, catalog: Engine, policy: ScoringPolicy, watcher: WorklistWatcher) -> None:
        self._catalog = catalog
        self._policy = policy
        self._watcher = watcher
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def page(
        self, how: order.Order, filters: order.Filters, limit: int, offset: int, now: datetime
    ) -> tuple[list[Any], int]:
        """Open items matching `filters`, in reading order: (rows with .rank, total matching)."""
        entries = self._snapshot(how, now).entries
        if filters.accession_number or filters.workitem_uid or filters.search:
            wanted = self._ids_of_studies(filters)
            entries = [e for e in entries if e.id in wanted]
        selected = [e for e in entries if _matches(e, filters)]
        chosen = selected[offset : offset + limit]
        return self._rows(chosen), len(selected)

    def _snapshot(self, how: order.Order, now: datetime) -> Snapshot:
        with self._lock:
            version = self._watcher.version  # read before the query: a change during it leaves the snapshot stale
            snap = self._snapshots.get(how)
            if snap is None or snap.version != version or posix_seconds(now) >= snap.valid_until_s:
                snap = self._take(how, now, version)
                self._snapshots[how] = snap
            return snap

    def _take(self, how: order.Order, now: datetime, version: int) -> Snapshot:
        with self._catalog.connect() as conn:
            rows = conn.execute(order.ranked_ids(self._policy, now, how)).all()
        entries = [
            Entry(r.id, r.rank, r.state, r.priority, frozenset(r.modalities.split("/")), r.ai_urgency > 0, r.ai_status)
            for r in rows
        ]
        now_s = posix_seconds(now)
        deadlines = [r.deadline_s for r in rows if r.deadline_s > now_s]
        return Snapshot(version, min(deadlines, default=float("inf")), entries)

    def _ids_of_studies(self, filters: order.Filters) -> set[int]:
        items_, studies = order.ITEMS, Study.__table__
        query = (
            select(items_.c.id)
            .join(studies, studies.c.id == items_.c.study_fk)
            .join(order.PATIENTS, order.PATIENTS.c.id == studies.c.patient_fk)
            .outerjoin(order.STUDY_PATIENTS, order.STUDY_PATIENTS.c.study_fk == studies.c.id)
        )
        if filters.accession_number:
            query = query.where(studies.c.accession_number == filters.accession_number)
        if filters.workitem_uid:
            query = query.where(items_.c.workitem_uid == filters.workitem_uid)
        if filters.search:
            query = query.where(order.search_condition(filters.search))
        with self._catalog.connect() as conn:
            return set(conn.execute(query).scalars())

    def _rows(self, chosen: list[Entry]) -> list[Any]:
        if not chosen:
            return []
        with self._catalog.connect() as conn:
            rows = conn.execute(order.detail_query().where(order.ITEMS.c.id.in_([e.id for e in chosen]))).all()
        by_id = {r.id: r for r in rows}
        return [SimpleNamespace(**by_id[e.id]._mapping, rank=e.rank) for e in chosen if e.id in by_id]


def _matches(entry: Entry, filters: order.Filters) -> bool:
    return (
        entry.state in filters.states
        and (not filters.modality or filters.modality.strip().upper() in entry.modalities)
        and (filters.flagged is None or entry.flagged == filters.flagged)
        and (filters.priorities is None or entry.priority in filters.priorities)
        and (filters.ai_status is None or entry.ai_status == filters.ai_status)
    )


def is_open_only(filters: order.Filters) -> bool:
    return set(filters.states) <= set(OPEN_WORKITEM)
