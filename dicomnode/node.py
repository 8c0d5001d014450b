"""The node: wires config, storage, catalog, listener, assembler, job scheduler, exporter, notifier, worklist
watcher and HTTP server, and runs them."""

from __future__ import annotations

import logging
import tempfile
import threading
from typing import TYPE_CHECKING

from pynetdicom.transport import ThreadedAssociationServer

from dicomnode.assembly.completion import Assembler
from dicomnode.assembly.hooks import Dispatcher
from dicomnode.catalog.db import open_catalog
from dicomnode.config.settings import Settings
from dicomnode.dicom.admission import AdmissionPolicy
from dicomnode.dicom.scp import start_listener
from dicomnode.export.sender import Exporter
from dicomnode.export.webhook import Notifier
from dicomnode.jobs.queue import open_queue
from dicomnode.jobs.scheduler import JobScheduler
from dicomnode.ops.health import check_all
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.ops.retention import RetentionThread
from dicomnode.receive.ingest import Ingest
from dicomnode.receive.storage import Storage
from dicomnode.routing.router import RoutingDispatcher
from dicomnode.worklist.enlisting import EnlistingDispatcher
from dicomnode.worklist.watcher import WorklistWatcher

if TYPE_CHECKING:
    from dicomnode.api.server import HttpServer

log = logging.getLogger(__name__)


class Node:
    def __init__(self, settings: Settings, dispatcher: Dispatcher | None = None) -> None:
        self.settings = settings
        self.storage = Storage(settings.storage.path)
        # pynetdicom and pydicom spool through tempfile; keep that on the storage filesystem.
        tempfile.tempdir = str(self.storage.tmp_dir)
        self.catalog = open_catalog(settings.catalog.url)
        self.metrics = NodeMetrics(self.catalog)
        self.retention: RetentionThread | None = None
        self.dispatcher = dispatcher
        self.scheduler: JobScheduler | None = None
        self.exporter: Exporter | None = None
        self.notifier: Notifier | None = None
        self.watcher: WorklistWatcher | None = None
        self.http: HttpServer | None = None
        self._server: ThreadedAssociationServer | None = None
        self._assembler: Assembler | None = None
        self._stopped = threading.Event()

    def start(self) -> None:
        s = self.settings
        removed = self.storage.remove_stale_temp_files()
        if removed:
            log.warning("removed %d unacknowledged temp files left by a previous run", removed)
        policy = AdmissionPolicy(s.dicom, self.storage.free_bytes, s.storage.min_free_bytes)
        ingest = Ingest(
            self.storage,
            self.catalog,
            s.dicom.duplicate_policy,
            s.dicom.max_instance_bytes,
            s.storage.min_free_bytes,
        )
        if self.dispatcher is None:
            self.scheduler = JobScheduler(
                self.catalog, open_queue(s), s.analysis, embedded=s.analysis.broker_url is None
            )
            registry = s.analysis.registry()
            self.dispatcher = RoutingDispatcher(s.routing.rules, registry, self.scheduler.wake, s.worklist.priority)
            self.scheduler.start()
        self._assembler = Assembler(
            self.catalog, EnlistingDispatcher(self.dispatcher, s.worklist), s.assembly.study_quiet_seconds,
            s.assembly.poll_seconds,
        )  # fmt: skip
        self._assembler.start()
        self.exporter = Exporter(self.catalog, self.storage, s.export, s.dicom.ae_title)
        self.exporter.start()
        self.notifier = Notifier(self.catalog, s.notify)
        self.notifier.start()
        self.watcher = WorklistWatcher(self.catalog, s.worklist, on_change=(self.exporter.wake, self.notifier.wake))
        self.watcher.start()
        if s.http.enabled:
            self._start_http()
        self._server = start_listener(s.dicom, policy, ingest, self.metrics)
        if s.retention.enabled:
            self.retention = RetentionThread(self.catalog, self.storage, s.retention)
            self.retention.start()
        host, port = self._server.server_address[:2]
        log.info(
            "listening ae=%s on %s:%d tls=%s storage=%s analysis=%s",
            s.dicom.ae_title, host, port, s.dicom.tls.enabled, self.storage.root,
            "celery" if s.analysis.broker_url else f"embedded x{s.analysis.embedded_workers}",
        )  # fmt: skip

    def _start_http(self) -> None:
        from dicomnode.api.app import Operations, create_app
        from dicomnode.api.server import HttpServer

        assert self.watcher is not None
        operations = Operations(self.metrics.registry, self.health)
        self.http = HttpServer(create_app(self.settings, self.catalog, self.watcher, operations), self.settings.http)
        self.http.start()
        if not self.settings.http.tokens:
            log.warning("http.tokens is empty: every API request is refused (401); add reader tokens to use it")
        log.info("worklist at %s://%s:%d/", self.http.scheme, self.settings.http.host, self.http.port)

    def health(self) -> dict:
        return check_all(self.settings, self.catalog, self._listening, self.storage.free_bytes)

    def _listening(self) -> bool:
        server = self._server
        acceptor = any(t.name.startswith("AcceptorServer") and t.is_alive() for t in threading.enumerate())
        return server is not None and server.socket.fileno() != -1 and acceptor and not self._stopped.is_set()

    @property
    def port(self) -> int:
        assert self._server is not None, "node not started"
        return int(self._server.server_address[1])

    def wait(self) -> None:
        self._stopped.wait()

    def stop(self) -> None:
        """Stop listening, abort open associations, stop assembly. Safe to call twice.

        Aborting is safe: every acknowledged instance is already durable, and a
        sender resends what was not acknowledged.
        """
        if self._stopped.is_set():
            return
        if self._server is not None:
            self._server.shutdown()  # stops accepting and closes the listening socket
            for assoc in self._server.ae.active_associations:
                if assoc.is_established:  # released ones are only finishing their thread
                    assoc.abort()
        if self._assembler is not None:
            self._assembler.stop()
        if self.scheduler is not None:
            self.scheduler.stop()
        for part in (self.http, self.retention, self.watcher, self.notifier, self.exporter):
            if part is not None:
                part.stop()
        self.catalog.dispose()
        self._stopped.set()
        log.info("stopped")
