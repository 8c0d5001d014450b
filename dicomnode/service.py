"""The one base of the node's background services (assembler, job scheduler, exporter, notifier, worklist
watcher, retention): reconcile once at start, then rounds until stopped."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class Service:
    """A named background thread that runs rounds.

    `start()` runs `reconcile()` in the caller's thread (start-up repair of what a previous run left; if it
    fails the node does not start), then the thread runs a round at once and again every `interval_s`, or
    sooner after `wake()`. A round that returns True has more work and the next one follows at once. A
    failed round logs one line with its traceback; the service retries at the next interval. `stop()` wakes
    the thread, waits at most `join_timeout_s` for the round in progress, then `close()`s; calling it twice
    is safe.
    """

    def __init__(self, name: str, interval_s: float, join_timeout_s: float = 10) -> None:
        self.name = name
        self._interval = interval_s
        self._join_timeout = join_timeout_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def reconcile(self) -> None:
        """Start-up repair; by default there is nothing to repair."""

    def run_round(self) -> bool:
        """One round of work; True when more is waiting."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the service holds, once its thread has ended."""

    def start(self) -> None:
        self.reconcile()
        self._thread.start()

    def wake(self) -> None:
        """Something changed: run the next round now rather than at the next interval."""
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._join_timeout)
        if not self._closed:
            self._closed = True
            self.close()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()  # before the round: a wake during it triggers the next one at once
            try:
                while self.run_round() and not self._stopping.is_set():
                    pass
            except Exception:
                log.exception("%s round failed; retrying", self.name)
            self._wake.wait(self._interval)
