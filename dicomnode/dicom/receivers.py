"""Several receiver processes on one DICOM port (`dicom.receivers`), so that ingest uses more than one core.

The node's own process is receiver 0 (its Listener, which binds the port); receivers 1..N-1 are spawned processes
given that listening socket, each running its own Listener with the same checks, storage and catalog, so an
instance is as durable whichever process took it. Whichever has the fewest live connections accepts the next one
(gate.GatedServer). Their connection gates share one ConnectionTable, so the admission caps count every receiver's
connections. What the node's other stages need from a receiver comes to the node's process as events on a pipe of
its own: the metrics it counts, and the associations completion on release waits for. A receiver that dies is
restarted; its associations count as aborted (their senders resend what was not acknowledged).

No lock or event is shared with a receiver but the table's file lock: a receiver killed at any moment leaves
nothing held (multiprocessing's Event and Queue lock would).
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from dicomnode.assembly.release import ReleaseTracker
from dicomnode.config.dicom import DicomConfig
from dicomnode.config.ops import LogConfig
from dicomnode.config.settings import Settings
from dicomnode.config.storage import StorageConfig
from dicomnode.dicom.connections import ConnectionTable
from dicomnode.errors import DicomnodeError
from dicomnode.ops.metrics import NodeMetrics

log = logging.getLogger(__name__)

_CTX = multiprocessing.get_context("spawn")  # never fork a process that runs threads (and may hold CUDA)
_START_TIMEOUT_S = 120.0  # imports on a loaded two-core machine
_RETRY_S = 5.0  # a receiver that cannot start is tried again after this, not in a tight loop
_STOP_TIMEOUT_S = 1.5  # SIGTERM to exit within 2 s: receivers abort their associations and go
_FORWARDED = ("associations", "active_associations", "instances", "bytes", "refused")


class _Forwarded:
    """One of NodeMetrics' counters or gauges, in a receiver: each change goes to the node's process."""

    def __init__(self, events: Any, receiver: int, name: str, labels: tuple[str, ...] = ()) -> None:
        self._events, self._receiver, self._name, self._labels = events, receiver, name, labels

    def labels(self, *values: str) -> _Forwarded:
        return _Forwarded(self._events, self._receiver, self._name, values)

    def inc(self, amount: float = 1.0) -> None:
        self._events.put((self._receiver, "metric", (self._name, self._labels), amount))

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)


class ForwardedMetrics:
    """What a receiver's listener counts (NodeMetrics' listener part), counted in the node's NodeMetrics."""

    def __init__(self, events: Any, receiver: int) -> None:
        for name in _FORWARDED:
            setattr(self, name, _Forwarded(events, receiver, name))


class ForwardedReleases:
    """ReleaseTracker's calls from a receiver's listener, made on the node's tracker (associations keyed by
    receiver)."""

    def __init__(self, events: Any, receiver: int) -> None:
        self._events, self._receiver = events, receiver

    def opened(self, association: int, completes_on_release: bool) -> None:
        self._events.put((self._receiver, "opened", association, completes_on_release))

    def stored(self, association: int, study: tuple[str, str]) -> None:
        self._events.put((self._receiver, "stored", association, study))

    def released(self, association: int) -> None:
        self._events.put((self._receiver, "released", association, None))

    def aborted(self, association: int) -> None:
        self._events.put((self._receiver, "aborted", association, None))


class EventPipe:
    """A receiver's end of its pipe to the node's process, shared by its threads."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._lock = threading.Lock()
        self._closed = False

    def put(self, event: tuple) -> None:
        with self._lock:
            if self._closed:  # an association thread still ending after the receiver closed its pipe
                return
            try:
                self._connection.send(event)
            except OSError:  # the node's process is gone: nothing is listening any more
                self._closed = True

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._connection.close()


@dataclass(frozen=True)
class ReceiverSpec:
    """What a receiver process is started with (pickled to it: the sections it needs, not the whole Settings,
    whose class is made per configuration file)."""

    dicom: DicomConfig
    storage: StorageConfig
    catalog_url: str
    log: LogConfig
    index: int
    table: ConnectionTable
    events: Any  # the writing end of its pipe to the node's process
    parent_pid: int
    listening: socket.socket  # receiver 0's listening socket (multiprocessing passes it as a file descriptor)


def run_receiver(spec: ReceiverSpec) -> None:
    """A receiver process: one more Listener on the node's port until SIGTERM or the node's process is gone."""
    from dicomnode.catalog.db import open_catalog
    from dicomnode.dicom.scp import receiver_listener
    from dicomnode.ops.logs import setup_logging
    from dicomnode.receive.storage import Storage

    stopping = threading.Event()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group; the node's process stops us
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    setup_logging(spec.log.level, spec.log.format)
    events = EventPipe(spec.events)
    storage = Storage(spec.storage.path, spec.storage.min_free_bytes)
    tempfile.tempdir = str(storage.tmp_dir)
    catalog = open_catalog(spec.catalog_url)
    metrics: Any = ForwardedMetrics(events, spec.index)  # NodeMetrics' listener part, forwarded
    releases: Any = ForwardedReleases(events, spec.index)  # ReleaseTracker's calls, forwarded
    listener = receiver_listener(
        spec.dicom, storage, catalog, metrics, releases, spec.table, spec.index, listening=spec.listening
    )
    listener.start()
    log.info("receiver %d listening pid=%d", spec.index, os.getpid())
    events.put((spec.index, "ready", os.getpid(), None))
    while not stopping.wait(0.2):
        if os.getppid() != spec.parent_pid:  # the node's process died without stopping us
            break
    listener.stop()
    catalog.dispose()
    events.close()
    logging.shutdown()
    sys.stderr.flush()
    os._exit(0)


@dataclass
class _Receiver:
    process: Any
    events: Any  # the reading end of its pipe
    ready: threading.Event
    associations: set[Hashable]  # open ones, aborted if it dies
    active: float = 0.0  # its share of the active-associations gauge


class ReceiverPool:
    """The node's stage for receivers 1..N-1 (the node's own Listener is receiver 0)."""

    name = "dicom-receivers"

    def __init__(
        self,
        settings: Settings,
        table: ConnectionTable,
        metrics: NodeMetrics,
        releases: ReleaseTracker,
        listening: Callable[[], socket.socket],
    ) -> None:
        """`listening`: receiver 0's listening socket, once its Listener has started (it starts before this)."""
        self._settings = settings
        self._listening = listening
        self._table = table
        self._metrics = metrics
        self._releases = releases
        self._receivers: dict[int, _Receiver] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pump = threading.Thread(target=self._pump_events, name="receiver-events", daemon=True)
        self._watch = threading.Thread(target=self._watch_receivers, name="receiver-watch", daemon=True)

    def start(self) -> None:
        self._pump.start()
        indexes = range(1, self._table.receivers)
        for index in indexes:  # all at once: each takes about a second of imports
            self._launch(index)
        for index in indexes:
            self._wait_ready(index)
        self._watch.start()
        log.info("%d receiver processes on the DICOM port", self._table.receivers)

    def alive(self) -> bool:
        with self._lock:
            return all(r.process.is_alive() for r in self._receivers.values())

    def stop(self) -> None:
        """SIGTERM to every receiver (each aborts its associations and exits), a kill for one that lingers."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            receivers = dict(self._receivers)
        for receiver in receivers.values():
            receiver.process.terminate()
        for index, receiver in receivers.items():
            receiver.process.join(_STOP_TIMEOUT_S)
            if receiver.process.is_alive():
                log.warning("receiver %d did not stop in time: killed", index)
                receiver.process.kill()
                receiver.process.join()
        self._pump.join(2)
        self._watch.join(1)
        for index in receivers:
            self._forget(index)
        if self._table.process_lock is not None:
            self._table.process_lock.remove()

    def _start_receiver(self, index: int) -> None:
        self._launch(index)
        self._wait_ready(index)

    def _launch(self, index: int) -> None:
        reading, writing = _CTX.Pipe(duplex=False)
        s = self._settings
        spec = ReceiverSpec(
            s.dicom, s.storage, s.catalog.url, s.log, index, self._table, writing, os.getpid(), self._listening()
        )
        process = _CTX.Process(target=run_receiver, args=(spec,), name=f"dicomnode-receiver-{index}", daemon=True)
        receiver = _Receiver(process, reading, threading.Event(), set())
        with self._lock:
            self._receivers[index] = receiver
        process.start()
        writing.close()  # the receiver holds the only writing end: its exit ends the pipe

    def _wait_ready(self, index: int) -> None:
        with self._lock:
            receiver = self._receivers[index]
        process = receiver.process
        deadline = _START_TIMEOUT_S
        while not receiver.ready.wait(0.1):
            deadline -= 0.1
            if not process.is_alive() or self._stopping.is_set() or deadline <= 0:
                raise DicomnodeError(f"DICOM receiver {index} did not start (exit code {process.exitcode})")

    def _watch_receivers(self) -> None:
        """Restart a receiver that died; its connections and associations are forgotten first."""
        while not self._stopping.wait(0.5):
            with self._lock:
                # once its pipe is drained (the pump closes it at its end), so that nothing it sent is lost
                dead = [(i, r) for i, r in self._receivers.items() if not r.process.is_alive() and r.events.closed]
            for index, receiver in dead:
                if self._stopping.is_set():
                    return
                log.error("receiver %d exited (code %s); restarting it", index, receiver.process.exitcode)
                self._forget(index)
                try:
                    self._start_receiver(index)
                except DicomnodeError as exc:
                    log.error("%s; retrying in %g s", exc, _RETRY_S)
                    self._stopping.wait(_RETRY_S)

    def _forget(self, index: int) -> None:
        self._table.clear(index)
        with self._lock:
            receiver = self._receivers.get(index)
            if receiver is None:
                return
            gone, receiver.associations = receiver.associations, set()
            active, receiver.active = receiver.active, 0.0
        for association in gone:
            self._releases.aborted(association)
        if active:
            self._metrics.active_associations.dec(active)

    def _pump_events(self) -> None:
        """Every receiver's events, in the order each sent them, until the pool stops and every pipe has ended."""
        while True:
            with self._lock:
                pipes = [r.events for r in self._receivers.values() if not r.events.closed]
            if self._stopping.is_set() and not pipes:
                return
            for pipe in multiprocessing.connection.wait(pipes, timeout=0.2):
                try:
                    event = pipe.recv()
                except (EOFError, OSError):  # the receiver exited: nothing more comes on this pipe
                    pipe.close()
                    continue
                try:
                    self._apply(*event)
                except Exception:  # one bad event must not stop the counting
                    log.exception("receiver event not applied")

    def _apply(self, receiver: int, kind: str, subject: Any, value: Any) -> None:
        if kind == "metric":
            name, labels = subject
            metric = getattr(self._metrics, name)
            metric = metric.labels(*labels) if labels else metric
            metric.inc(value)  # a gauge's dec arrives as a negative inc
            if name == "active_associations":
                with self._lock:
                    self._receivers[receiver].active += value
            return
        association = (receiver, subject)
        with self._lock:
            state = self._receivers[receiver]
            if kind == "ready":
                state.ready.set()
                return
            if kind == "opened":
                state.associations.add(association)
            elif kind in ("released", "aborted"):
                state.associations.discard(association)
        if kind == "opened":
            self._releases.opened(association, value)  # type: ignore[arg-type]
        elif kind == "stored":
            self._releases.stored(association, value)  # type: ignore[arg-type]
        else:
            getattr(self._releases, kind)(association)
