"""Completion on release, for senders that send a study in one association (per peer, `complete_on_release`):
which studies each open association is sending, so that its A-RELEASE can complete them without waiting the
whole quiet period. A study another open association is still sending waits for that one's release."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from datetime import datetime

from dicomnode.catalog.db import utcnow

StudyKey = tuple[str, str]  # (called AE, Study Instance UID): a study in the catalog


@dataclass
class _Association:
    completes_on_release: bool
    studies: set[StudyKey] = field(default_factory=set)


class ReleaseTracker:
    def __init__(self, on_released: Callable[[StudyKey, datetime], None]) -> None:
        """`on_released(study, released_at)`: the study's last sending association was released cleanly."""
        self._on_released = on_released
        self._open: dict[Hashable, _Association] = {}
        self._lock = threading.Lock()

    def opened(self, association: Hashable, completes_on_release: bool) -> None:
        with self._lock:
            self._open[association] = _Association(completes_on_release)

    def stored(self, association: Hashable, study: StudyKey) -> None:
        with self._lock:
            if association in self._open:
                self._open[association].studies.add(study)

    def released(self, association: Hashable) -> None:
        """A clean release: complete what it sent that no other open association is sending. Called at its
        EVT_RELEASED and at its connection's close, whichever comes first; the second call finds nothing."""
        now = utcnow()
        with self._lock:
            gone = self._open.pop(association, None)
            if gone is None or not gone.completes_on_release:
                return
            busy = set().union(*(a.studies for a in self._open.values()))
            done = sorted(gone.studies - busy)
        for study in done:
            self._on_released(study, now)

    def aborted(self, association: Hashable) -> None:
        """An abort or a dropped connection: the sender may resend, so nothing completes early."""
        with self._lock:
            self._open.pop(association, None)
