"""Every receiver's live connections, in one table the connection gates of all receiver processes decide on.

With `dicom.receivers` > 1 several processes accept on the DICOM port; the admission caps (per address, pending,
strangers, max_associations) hold for the node as a whole, so each gate publishes its live connections in a table
in shared memory and counts everyone's under one lock shared by the processes. Each receiver owns a row of
slots; a slot holds a connection's address (a 128-bit digest) and its state. A receiver that dies is cleared by
the process that restarts it. The lock is a file lock (flock), which the kernel releases when its holder dies: a
receiver killed while deciding cannot leave the others locked out.

The same rows say whose turn it is to accept: the receiver with the fewest live connections among those that
are running (each marks itself running at every turn of its accept loop).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import multiprocessing
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import numpy as np

from dicomnode.config.dicom import DicomConfig

# A receiver whose accept loop has not marked itself running for this long is not waited for (it died or is stuck):
# the others take its turns. Its loop marks itself at least every 0.5 s (socketserver's poll interval).
RUNNING_WITHIN_S = 5.0


class SlotState(IntEnum):
    FREE = 0
    PENDING = 1  # from an allowed peer's address, no association yet
    STRANGER = 2  # from an address outside every peer's hosts, no association yet
    ADMITTED = 3  # counts against max_associations


@dataclass(frozen=True)
class Counts:
    """Live connections across all receivers that have not associated yet (ConnectionTable.admitted counts the
    others)."""

    same_address: int
    pending: int
    strangers: int


class ProcessLock:
    """A lock between the threads of every process that holds a copy: a thread lock in each process, then an
    exclusive flock on a file each process opens itself."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._fd: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._threads:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def _lock_file() -> str:
    """On a local tmpfs where there is one (never on the storage, which may be a network filesystem)."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="dicomnode-receivers-", suffix=".lock", dir=directory)
    os.close(fd)
    return path


class ConnectionTable:
    """`receivers` rows of `slots` each. Built with shared memory and a process lock (`shared=True`, picklable to
    spawned receivers) or plain memory and a thread lock for a node with one receiver."""

    def __init__(self, receivers: int, slots: int, shared: bool = False) -> None:
        self.receivers, self.slots = receivers, slots
        size = receivers * slots
        self.process_lock: ProcessLock | None = None
        if shared:
            ctx = multiprocessing.get_context("spawn")
            self.process_lock = ProcessLock(_lock_file())
            self._lock: Any = self.process_lock.held
            self._addresses: Any = ctx.RawArray("B", size * 16)
            self._states: Any = ctx.RawArray("B", size)
            self._running: Any = ctx.RawArray("d", receivers)
        else:
            thread_lock = threading.Lock()
            self._lock = lambda: thread_lock
            self._addresses = bytearray(size * 16)
            self._states = bytearray(size)
            self._running = bytearray(receivers * 8)
        self._views()

    @classmethod
    def for_config(cls, dicom: DicomConfig, receivers: int) -> ConnectionTable:
        # A gate never lets more than this many connections live in one receiver (pending and admitted caps).
        return cls(receivers, dicom.max_associations + dicom.max_pending_connections, shared=receivers > 1)

    def _views(self) -> None:
        self._address_view = np.frombuffer(self._addresses, dtype="<u8").reshape(self.receivers, self.slots, 2)
        self._state_view = np.frombuffer(self._states, dtype=np.uint8).reshape(self.receivers, self.slots)
        self._running_view = np.frombuffer(self._running, dtype=np.float64)  # CLOCK_MONOTONIC: one clock per machine

    def __getstate__(self) -> dict[str, Any]:
        assert self.process_lock is not None, "only a shared table goes to other processes"
        return {k: v for k, v in self.__dict__.items() if not k.endswith("_view") and k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = self.process_lock.held  # type: ignore[union-attr]
        self._views()

    def locked(self) -> AbstractContextManager[Any]:
        """Hold while counting and claiming, so that two receivers cannot both take the last place."""
        return self._lock()

    def counts(self, address: str) -> Counts:
        """Caller holds the lock."""
        states = self._state_view
        live = states != SlotState.FREE
        same = live & np.all(self._address_view == _digest(address), axis=2)
        return Counts(
            same_address=int(same.sum()),
            pending=int(np.isin(states, (SlotState.PENDING, SlotState.STRANGER)).sum()),
            strangers=int((states == SlotState.STRANGER).sum()),
        )

    def admitted(self) -> int:
        """Caller holds the lock."""
        return int((self._state_view == SlotState.ADMITTED).sum())

    def claim(self, receiver: int, address: str, state: SlotState) -> int | None:
        """A free slot of the receiver's row, now holding the connection; None when the row is full. Caller holds
        the lock."""
        free = np.flatnonzero(self._state_view[receiver] == SlotState.FREE)
        if free.size == 0:
            return None
        slot = int(free[0])
        self._address_view[receiver, slot] = _digest(address)
        self._state_view[receiver, slot] = state
        return slot

    def set(self, receiver: int, slot: int, state: SlotState) -> None:
        """Caller holds the lock."""
        self._state_view[receiver, slot] = state

    def clear(self, receiver: int) -> None:
        """Forget a receiver's connections (it ended; its sockets closed with it)."""
        with self._lock():
            self._state_view[receiver] = SlotState.FREE
            self._running_view[receiver] = 0.0

    def mark_running(self, receiver: int) -> None:
        """The receiver's accept loop is turning (its turns are waited for)."""
        self._running_view[receiver] = time.monotonic()

    def has_turn(self, receiver: int) -> bool:
        """Whether the receiver should accept the next connection: no running receiver holds fewer live ones.
        Ties all have the turn (the first to accept takes it)."""
        with self._lock():
            live = (self._state_view != SlotState.FREE).sum(axis=1)
            running = self._running_view > time.monotonic() - RUNNING_WITHIN_S
        running[receiver] = True
        return bool(live[receiver] <= live[running].min())


def _digest(address: str) -> np.ndarray:
    return np.frombuffer(hashlib.blake2b(address.encode(), digest_size=16).digest(), dtype="<u8")
