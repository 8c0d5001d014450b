"""Notices worklist changes made by any process (workers write results to the shared catalog) and records
overdue jumps. Live pages follow `version`; it changes within `poll_seconds` of a committed change.

Every stored AI result touches its study's item, so a change here is also the moment a worker's exports and
webhooks were committed: `on_change` callbacks (the node passes the exporter's and notifier's wake) run then,
instead of those senders waiting for their own poll."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from sqlalchemy import Engine, func, select

from dicomnode.catalog.schema import WorkItem, WorkItemEvent
from dicomnode.config.worklist import WorklistConfig
from dicomnode.service import Service
from dicomnode.worklist import items

log = logging.getLogger(__name__)
_items = WorkItem.__table__
_events = WorkItemEvent.__table__


class WorklistWatcher(Service):
    def __init__(
        self,
        catalog: Engine,
        config: WorklistConfig,
        poll_seconds: float = 0.2,
        on_change: Sequence[Callable[[], None]] = (),
    ) -> None:
        super().__init__("worklist-watcher", interval_s=poll_seconds)
        self._catalog = catalog
        self._config = config
        self._on_change = tuple(on_change)
        self.version = 0  # increases whenever the catalog's worklist changed
        self._seen: tuple | None = None
        self._next_overdue_check = 0.0

    def run_round(self) -> bool:
        if time.monotonic() >= self._next_overdue_check:
            with self._catalog.begin() as conn:
                moved = items.mark_overdue(conn, self._config)
            if moved:
                log.info("worklist: %d items passed their maximum wait and moved to the top", moved)
            self._next_overdue_check = time.monotonic() + self._config.overdue_check_seconds
        self.check()
        return False

    def check(self) -> bool:
        """Look once; True (and version + 1) when the worklist changed since the last look."""
        with self._catalog.connect() as conn:
            latest_event = select(func.max(_events.c.id)).scalar_subquery()
            latest_update = select(func.max(_items.c.updated_at)).scalar_subquery()
            seen = conn.execute(select(latest_event, latest_update)).one()
        if tuple(seen) == self._seen:
            return False
        self._seen = tuple(seen)
        self.version += 1
        for callback in self._on_change:
            callback()
        return True
