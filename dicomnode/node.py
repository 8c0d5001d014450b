"""The composition root: builds the node's stages in the order a study meets them, starts and stops them over
that one list."""

from __future__ import annotations

import logging
import tempfile
import threading
from typing import TYPE_CHECKING, Protocol

from dicomnode.assembly.completion import Assembler
from dicomnode.assembly.release import ReleaseTracker
from dicomnode.catalog.db import open_catalog
from dicomnode.config.settings import Settings
from dicomnode.dicom.connections import ConnectionTable
from dicomnode.dicom.receivers import ReceiverPool
from dicomnode.dicom.scp import Listener, receiver_listener
from dicomnode.export.dicom import Exporter
from dicomnode.export.hl7 import Hl7Sender
from dicomnode.export.webhook import Notifier
from dicomnode.hl7.listener import Hl7Listener
from dicomnode.jobs.queue import open_queue
from dicomnode.jobs.scheduler import JobScheduler
from dicomnode.ops.health import check_all
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.ops.monitoring.alerts import MonitorService
from dicomnode.ops.retention import RetentionService
from dicomnode.receive.reconcile import reconcile
from dicomnode.receive.storage import Storage
from dicomnode.routing.router import Router
from dicomnode.worklist.enlisting import EnlistingHook
from dicomnode.worklist.watcher import WorklistWatcher

if TYPE_CHECKING:
    from dicomnode.api.auth import Readers

log = logging.getLogger(__name__)


class Stage(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Node:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage = Storage(settings.storage.path, settings.storage.min_free_bytes)
        # pynetdicom and pydicom spool through tempfile; keep that on the storage filesystem.
        tempfile.tempdir = str(self.storage.tmp_dir)
        self.catalog = open_catalog(settings.catalog.url)
        self.metrics = NodeMetrics(self.catalog)
        self.registry = settings.registry
        self.stages: list[Stage] = []
        self._listener: Listener | None = None
        self._receivers: ReceiverPool | None = None
        self._readers: Readers | None = None
        self._stopped = threading.Event()

    def build(self) -> list[Stage]:
        """Every stage, in flow order: receive -> assemble -> route and queue -> export -> rank -> serve -> retain ->
        monitor."""
        s, catalog, storage = self.settings, self.catalog, self.storage
        exporter = Exporter(catalog, storage, s.export, s.dicom.ae_title)
        notifier = Notifier(catalog, s.notify)
        reporter = Hl7Sender(catalog, s.hl7, s.export.tls_context(), self.metrics)
        watcher = WorklistWatcher(catalog, s.worklist, on_change=(exporter.wake, reporter.wake, notifier.wake))
        queue = open_queue(s, after_job=watcher.wake)
        scheduler = JobScheduler(catalog, queue, s.analysis, embedded=s.analysis.broker_url is None)
        router = Router(s.routing.rules, self.registry, scheduler.wake, s.worklist.priority)
        a = s.assembly
        assembler = Assembler(
            catalog, EnlistingHook(router, s.worklist), a.study_quiet_seconds, a.poll_seconds, a.release_grace_seconds
        )
        releases = ReleaseTracker(assembler.release_completes)
        table = ConnectionTable.for_config(s.dicom, s.dicom.receiver_count())
        # receiver 0; the others run in processes of their own (ReceiverPool)
        self._listener = receiver_listener(s.dicom, storage, catalog, self.metrics, releases, table)
        if table.receivers > 1:
            listener = self._listener
            self._receivers = ReceiverPool(s, table, self.metrics, releases, lambda: listener.listening_socket)
        stages: list[Stage | None] = [
            self._receivers,
            self._listener,
            Hl7Listener(s.hl7, catalog, s.worklist, self.metrics) if s.hl7.enabled else None,
            assembler,
            scheduler,
            exporter,
            reporter,
            notifier,
            watcher,
            self._http(watcher) if s.http.enabled else None,
            RetentionService(catalog, storage, s.retention) if s.retention.enabled else None,
            MonitorService(catalog, s.monitoring, s.notify),
        ]
        return [stage for stage in stages if stage is not None]

    def start(self) -> None:
        """Start downstream stages first, so that nothing is handed to a stage not yet running."""
        removed = self.storage.remove_stale_temp_files()
        if removed:
            log.warning("removed %d unacknowledged temp files left by a previous run", removed)
        reconcile(self.storage, self.catalog, self.settings.dicom.ae_title)
        self.stages = self.build()
        for stage in reversed(self.stages):
            stage.start()
        s = self.settings
        host, port = self.listener.address
        log.info(
            "listening ae=%s on %s:%d receivers=%d tls=%s storage=%s analysis=%s",
            s.dicom.ae_title,
            host,
            port,
            s.dicom.receiver_count(),
            s.dicom.tls.enabled,
            self.storage.root,
            "celery" if s.analysis.broker_url else f"embedded x{s.analysis.embedded_workers}",
        )

    def _http(self, watcher: WorklistWatcher) -> Stage:
        from dicomnode.api.app import Operations, create_app
        from dicomnode.api.server import HttpServer

        operations = Operations(self.metrics.registry, self.health)
        if not self.settings.http.tokens:
            log.warning("http.tokens is empty: every API request is refused (401); add reader tokens to use it")
        app = create_app(self.settings, self.catalog, watcher, operations)
        self._readers = app.state.readers
        return HttpServer(app, self.settings.http)

    def reload_tokens(self, settings: Settings) -> None:
        """Take http.tokens from freshly read settings (SIGHUP); a revoked token is refused from now on."""
        if self._readers is not None:
            self._readers.replace(settings.http.tokens)
            log.info("http.tokens reloaded: %d reader tokens", len(self._readers))

    @property
    def listener(self) -> Listener:
        assert self._listener is not None, "node not started"
        return self._listener

    def health(self) -> dict:
        return check_all(self.settings, self.catalog, self._listening, self.storage)

    def _listening(self) -> bool:
        receivers_up = self._receivers is None or self._receivers.alive()
        listening = self._listener is not None and self._listener.is_listening()
        return listening and receivers_up and not self._stopped.is_set()

    @property
    def port(self) -> int:
        return self.listener.address[1]

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        """Stop upstream stages first (the listener before anything behind it). Safe to call twice."""
        if self._stopped.is_set():
            return
        for stage in self.stages:
            stage.stop()
        self.catalog.dispose()
        self._stopped.set()
        log.info("stopped")
