"""The DICOM listener: a pynetdicom AE and one small handler per event."""

from __future__ import annotations

import functools
import logging
import pkgutil
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import pynetdicom
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]
from sqlalchemy import Engine

from dicomnode.assembly.release import ReleaseTracker
from dicomnode.config.dicom import DicomConfig, TLSConfig
from dicomnode.dicom import status
from dicomnode.dicom.admission import AdmissionPolicy, Rejection
from dicomnode.dicom.answering import install_lenient_uid_validator
from dicomnode.dicom.connections import ConnectionTable
from dicomnode.dicom.gate import ConnectionGate, GatedServer
from dicomnode.dicom.retrieve import QUERY_RETRIEVE_MODELS, Retrieval
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.receive.incoming import Incoming
from dicomnode.receive.ingest import Ingest, StoreRequest
from dicomnode.receive.storage import Storage

log = logging.getLogger(__name__)

# pynetdicom logs association details and, at DEBUG, DIMSE messages; keep it quiet
# unless asked, and never let it print data sets or query identifiers (PHI).
logging.getLogger("pynetdicom").setLevel(logging.WARNING)


def _without_traceback(record: logging.LogRecord) -> bool:
    """pynetdicom logs a traceback for every undecodable PDU; from a hostile peer that floods the log."""
    record.exc_info, record.exc_text, record.stack_info = None, None, None
    return True


for _module in pkgutil.iter_modules(pynetdicom.__path__):  # a logger's filter does not apply to its children
    logging.getLogger(f"pynetdicom.{_module.name}").addFilter(_without_traceback)
_config.LOG_REQUEST_IDENTIFIERS = False
_config.LOG_RESPONSE_IDENTIFIERS = False
# Accept private and not-yet-known storage SOP classes too: a hospital's scanners send
# them, and the node stores bytes without interpreting them. pynetdicom then accepts the
# first proposed transfer syntax; Ingest refuses one it cannot read.
_config.UNRESTRICTED_STORAGE_SERVICE = True
# pynetdicom's standard handlers only format DEBUG lines (which we never show) and fail on odd UIDs.
_config.LOG_HANDLER_LEVEL = "none"
install_lenient_uid_validator()  # a bad UID gets 0xC001 from Ingest, not an abort from pynetdicom


def build_ae(dicom: DicomConfig) -> AE:
    """An AE that accepts C-ECHO, C-STORE for every storage SOP class (private ones too), and C-FIND, C-MOVE
    and C-GET (Patient Root and Study Root)."""
    ae = AE(ae_title=dicom.ae_title)
    ae.maximum_pdu_size = dicom.max_pdu_bytes
    # The gate counts admitted associations against max_associations; pynetdicom counts every
    # connection thread, so its own limit is set where only the gate's caps can reach it.
    ae.maximum_associations = dicom.max_associations + dicom.max_pending_connections
    ae.acse_timeout = dicom.acse_timeout_s
    ae.dimse_timeout = dicom.dimse_timeout_s
    ae.network_timeout = dicom.network_timeout_s
    ae.require_called_aet = False  # AdmissionPolicy checks against all our titles
    # Storage contexts need no listing: UNRESTRICTED_STORAGE_SERVICE accepts them all.
    ae.add_supported_context(Verification, ALL_TRANSFER_SYNTAXES)
    for model in QUERY_RETRIEVE_MODELS:
        ae.add_supported_context(model, ALL_TRANSFER_SYNTAXES)
    return ae


class Listener:
    """The node's DICOM port: started last, so that every stage behind it runs before the first C-STORE."""

    def __init__(
        self,
        dicom: DicomConfig,
        policy: AdmissionPolicy,
        ingest: Ingest,
        metrics: NodeMetrics,
        releases: ReleaseTracker,
        retrieval: Retrieval,
        table: ConnectionTable | None = None,
        receiver: int = 0,
        listening: socket.socket | None = None,
    ) -> None:
        """`table` and `receiver`: with several receiver processes (dicom.receivers), the connection table they
        share and this one's row in it; `listening`: receiver 0's listening socket, which the others accept on."""
        self.name = "dicom-listener"
        self._dicom = dicom
        self._ingest = ingest
        self._gate = ConnectionGate(dicom, policy.is_peer_address, metrics, table=table, receiver=receiver)
        self._shared = table is not None and table.receivers > 1
        self._listening = listening
        self._handlers = [
            (evt.EVT_REQUESTED, handle_requested, [policy, self._gate, metrics]),
            (evt.EVT_ACCEPTED, handle_accepted, [policy, metrics, releases, receiver]),
            (evt.EVT_REJECTED, handle_rejected_by_pynetdicom, [metrics]),
            (evt.EVT_C_ECHO, handle_echo),
            (evt.EVT_C_STORE, handle_store, [ingest, metrics, releases]),
            (evt.EVT_RELEASED, handle_released, [releases]),
            (evt.EVT_ABORTED, handle_aborted),
            (evt.EVT_CONN_OPEN, handle_connection_opened, [metrics]),
            (evt.EVT_CONN_CLOSE, handle_connection_closed, [metrics, releases, self._gate]),
            *retrieval.handlers(),
        ]
        self._server: GatedServer | None = None

    def start(self) -> None:
        self._server = build_ae(self._dicom).make_server(
            (self._dicom.host, self._dicom.port),
            evt_handlers=self._handlers,
            ssl_context=server_tls_context(self._dicom.tls),
            server_class=GatedServer,
            gate=self._gate,
            begin_store=functools.partial(begin_store, ingest=self._ingest),
            shared=self._shared,
            listening=self._listening,
        )
        self._server.ae._servers.append(self._server)  # as AE.start_server does: active_associations reads it
        threading.Thread(target=self._server.serve_forever, name="AcceptorServer@dicomnode", daemon=True).start()

    @property
    def listening_socket(self) -> socket.socket:
        """The socket this listener accepts on (receiver 0's is handed to the other receivers)."""
        assert self._server is not None, "listener not started"
        return self._server.socket

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "listener not started"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def is_listening(self) -> bool:
        server = self._server
        acceptor = any(t.name.startswith("AcceptorServer") and t.is_alive() for t in threading.enumerate())
        return server is not None and server.socket.fileno() != -1 and acceptor

    def stop(self) -> None:
        """Stop accepting and abort open associations: every acknowledged instance is already durable, and a
        sender resends what was not acknowledged."""
        if self._server is None:
            return
        self._server.shutdown()  # stops accepting and closes the listening socket
        for assoc in self._server.ae.active_associations:
            if assoc.is_established:  # released ones are only finishing their thread
                assoc.abort()


def receiver_listener(
    dicom: DicomConfig,
    storage: Storage,
    catalog: Engine,
    metrics: NodeMetrics,
    releases: ReleaseTracker,
    table: ConnectionTable,
    receiver: int = 0,
    listening: socket.socket | None = None,
) -> Listener:
    """Receiver `receiver`'s listener (the node's own is 0): the same checks, storage and catalog in every receiver
    process. Only receiver 0 says that an empty allowlist accepts everyone."""
    return Listener(
        dicom,
        AdmissionPolicy(dicom, storage, warn_if_open=receiver == 0),
        Ingest(storage, catalog, dicom.duplicate_policy, dicom.max_instance_bytes),
        metrics,
        releases,
        Retrieval(catalog, storage, dicom),
        table=table,
        receiver=receiver,
        listening=listening,
    )


def server_tls_context(tls: TLSConfig) -> ssl.SSLContext | None:
    if not tls.enabled:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(tls.cert_file, tls.key_file)  # type: ignore[arg-type]
    ctx.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_NONE
    return ctx


def handle_requested(event: evt.Event, policy: AdmissionPolicy, gate: ConnectionGate, metrics: NodeMetrics) -> None:
    """Accept or reject an A-ASSOCIATE-RQ before pynetdicom negotiates it."""
    rq = event.assoc.requestor
    calling, called = rq.primitive.calling_ae_title, rq.primitive.called_ae_title
    rejection = policy.decide(calling, called, rq.address)
    if rejection is None and not gate.admit(event.assoc):
        limit = gate.dicom.max_associations
        rejection = Rejection(
            *status.LOCAL_LIMIT_EXCEEDED,
            f"all associations in use (dicom.max_associations is {limit})",
            "association_limit",
        )
    if rejection is None:
        return
    metrics.associations.labels("rejected", rejection.label).inc()
    log.warning(
        "association rejected from %s@%s to %s by receiver %d: %s",
        calling,
        rq.address,
        called,
        gate.receiver,
        rejection.reason,
    )
    event.assoc.acse.send_reject(rejection.result, rejection.source, rejection.diagnostic)
    # As pynetdicom's own reject path does: kill() waits until the DUL has sent
    # the A-ASSOCIATE-RJ, else the socket may close before the peer reads it.
    event.assoc.kill()


def handle_accepted(
    event: evt.Event, policy: AdmissionPolicy, metrics: NodeMetrics, releases: ReleaseTracker, receiver: int
) -> None:
    rq = event.assoc.requestor
    releases.opened(id(event.assoc), policy.completes_on_release(rq.primitive.calling_ae_title, rq.address))
    metrics.associations.labels("accepted", "").inc()
    log.info(
        "association from %s@%s:%s to %s, receiver %d",
        rq.primitive.calling_ae_title,
        rq.address,
        rq.port,
        rq.primitive.called_ae_title,
        receiver,
    )


def handle_rejected_by_pynetdicom(event: evt.Event, metrics: NodeMetrics) -> None:
    """pynetdicom's own refusals, after our policy let the request through (protocol version, application context,
    its thread limit)."""
    rq = event.assoc.requestor
    rj = event.assoc.acceptor.primitive
    reason = status.rejection_reason(rj.result, rj.result_source, rj.diagnostic) if rj is not None else "?"
    metrics.associations.labels("rejected", "protocol").inc()
    log.warning("association rejected from %s@%s: %s", rq.primitive.calling_ae_title, rq.address, reason)


def handle_echo(event: evt.Event) -> int:
    return status.SUCCESS


@dataclass(frozen=True)
class Receiving:
    """A C-STORE whose data set is arriving (dicom.fastpath streams it into `incoming`)."""

    request: StoreRequest
    incoming: Incoming

    def write(self, chunk: bytes | memoryview) -> None:
        self.incoming.write(chunk)

    def discard(self) -> None:
        self.incoming.discard()


def begin_store(assoc: Any, command_set: Dataset, context_id: int, ingest: Ingest) -> Receiving:
    """A C-STORE-RQ's command has arrived (called by dicom.fastpath before its data set)."""
    request = _store_request(
        assoc, command_set.get("AffectedSOPClassUID"), command_set.get("AffectedSOPInstanceUID"), context_id
    )
    return Receiving(request, ingest.begin(request))


def _store_request(assoc: Any, sop_class: Any, sop_instance: Any, context_id: int) -> StoreRequest:
    rq = assoc.requestor
    return StoreRequest(
        sop_class_uid=str(sop_class or ""),
        sop_instance_uid=str(sop_instance or ""),
        transfer_syntax_uid=str(assoc._accepted_cx[context_id].transfer_syntax[0]),
        calling_ae=rq.primitive.calling_ae_title.strip(),
        called_ae=rq.primitive.called_ae_title.strip(),
        peer_address=rq.address,
    )


def handle_store(event: evt.Event, ingest: Ingest, metrics: NodeMetrics, releases: ReleaseTracker) -> Dataset | int:
    receiving: Receiving | None = getattr(event.request, "incoming", None)
    if receiving is None:  # a request that said it has no data set: refused as an empty one
        req = event.request
        request = _store_request(event.assoc, req.AffectedSOPClassUID, req.AffectedSOPInstanceUID, req._context_id)
        receiving = Receiving(request, ingest.begin(request))
    outcome = ingest.complete(receiving.request, receiving.incoming)
    if outcome.status == status.SUCCESS:
        metrics.instances.inc()
        metrics.bytes.inc(receiving.incoming.size)
        if outcome.study_instance_uid:
            releases.stored(id(event.assoc), (receiving.request.called_ae, outcome.study_instance_uid))
    else:
        metrics.refused.labels(status.hex_code(outcome.status)).inc()
    if outcome.comment is None:
        return outcome.status
    rsp = Dataset()
    rsp.Status = outcome.status
    rsp.ErrorComment = outcome.comment[:64]
    return rsp


def handle_released(event: evt.Event, releases: ReleaseTracker) -> None:
    releases.released(id(event.assoc))


def handle_aborted(event: Any) -> None:
    rq = event.assoc.requestor
    calling = rq.primitive.calling_ae_title if rq.primitive else "?"
    log.warning("association aborted with %s@%s", calling, rq.address)


def handle_connection_opened(event: Any, metrics: NodeMetrics) -> None:
    metrics.active_associations.inc()


def handle_connection_closed(event: Any, metrics: NodeMetrics, releases: ReleaseTracker, gate: ConnectionGate) -> None:
    event.assoc.dimse.discard_unfinished()  # instances cut off mid-transfer leave no temp file
    if event.assoc.is_released:  # the peer may close before EVT_RELEASED fires; whichever comes first completes
        releases.released(id(event.assoc))
    else:  # an abort or a dropped connection
        releases.aborted(id(event.assoc))
    gate.close_association(event.assoc)
    metrics.active_associations.dec()
