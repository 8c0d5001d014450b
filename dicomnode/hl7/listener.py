"""The HL7 v2 listener: orders from the RIS over MLLP (optionally TLS), one thread per connection.

Each message is answered once it is committed: AA when the order is recorded, AE or AR with the reason (and an
ERR segment) when it cannot be. A connection from outside `hl7.peers`, over `max_connections`, with broken
framing, a message over `max_message_bytes` or one that trickles past `message_timeout_s` is closed; the
listener carries on. Logs carry control IDs, message types and outcomes only: HL7 messages are full of patient
data.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import ssl
import threading
import time

from sqlalchemy import Engine

from dicomnode.config.hl7 import Hl7Config
from dicomnode.config.worklist import WorklistConfig
from dicomnode.dicom.scp import server_tls_context
from dicomnode.hl7 import messages
from dicomnode.hl7.messages import Header, Refused
from dicomnode.hl7.mllp import FrameReader, FrameTimeout, FrameTooLarge, FramingError, frame
from dicomnode.hl7.orders import record_order
from dicomnode.ops.metrics import NodeMetrics

log = logging.getLogger(__name__)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    listener: Hl7Listener


class _Connection(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        self.server.listener.serve_connection(self.request, self.client_address[0])


class Hl7Listener:
    """The node's MLLP port: a stage like the DICOM listener, started once the stages behind it run."""

    def __init__(self, config: Hl7Config, catalog: Engine, worklist: WorklistConfig, metrics: NodeMetrics) -> None:
        self.name = "hl7-listener"
        self._config = config
        self._catalog = catalog
        self._worklist = worklist
        self._metrics = metrics
        self._tls = server_tls_context(config.tls)
        self._server: _Server | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._server = _Server((self._config.host, self._config.port), _Connection)
        self._server.listener = self
        threading.Thread(target=self._server.serve_forever, name="hl7-acceptor", daemon=True).start()
        host, port = self.address
        log.info("hl7 listening on %s:%d tls=%s", host, port, self._config.tls.enabled)

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None, "hl7 listener not started"
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in self._open:  # every answered message is committed; a sender resends the unanswered
                _close(sock)

    def serve_connection(self, sock: socket.socket, address: str) -> None:
        if not self._config.allows(address):
            log.warning("hl7 connection from %s refused: not in hl7.peers", address)
            return self._refuse("peer")
        with self._lock:
            if len(self._open) >= self._config.max_connections:
                log.warning("hl7 connection from %s refused: max_connections %d", address, self._config.max_connections)
                return self._refuse("busy")
            self._open.add(sock)
        try:
            self._converse(self._secure(sock), address)
        except (OSError, ssl.SSLError) as exc:
            log.info("hl7 connection from %s ended: %s", address, type(exc).__name__)
        finally:
            with self._lock:
                self._open.discard(sock)

    def _refuse(self, outcome: str) -> None:
        self._metrics.hl7_messages.labels("in", "", outcome).inc()

    def _secure(self, sock: socket.socket) -> socket.socket:
        if self._tls is None:
            return sock
        sock.settimeout(self._config.message_timeout_s)
        return self._tls.wrap_socket(sock, server_side=True)

    def _converse(self, sock: socket.socket, address: str) -> None:
        c = self._config
        reader = FrameReader(sock, c.max_message_bytes, c.message_timeout_s, c.idle_timeout_s)
        while True:
            try:
                body = reader.read()
            except FrameTooLarge as exc:
                log.warning("hl7 message from %s refused: %s; connection closed", address, exc)
                self._refuse("too large")
                return
            except FrameTimeout as exc:
                log.warning("hl7 sender %s too slow: %s; connection closed", address, exc)
                self._refuse("timeout")
                return
            except FramingError as exc:
                log.warning("hl7 connection from %s closed: %s", address, exc)
                self._refuse("framing")
                return
            except TimeoutError:
                return  # idle: nothing half-received is lost
            if body is None:
                return
            sock.sendall(frame(self.answer(body).encode()))

    def answer(self, body: bytes) -> str:
        """The ACK for one message: the order recorded (AA) or the reason it was not (AE, AR)."""
        header: Header | None = None
        try:
            msg, header = messages.read_header(body)
            order = messages.parse_order(msg, header, self._config.accession_fields)
            with self._catalog.begin() as conn:
                applied = record_order(conn, order, self._worklist)
        except Refused as refused:
            kind = header.message_type if header else ""
            log.warning(
                "hl7 message control_id=%s type=%s answered %s: %s",
                header.control_id if header else "?",
                kind,
                refused.code,
                refused.reason,
            )
            self._metrics.hl7_messages.labels("in", kind, refused.code).inc()
            return messages.refusal_ack(header, refused, *self._us())
        except Exception as exc:  # the catalog; its message may quote patient data, so name the type only
            log.error(
                "hl7 message control_id=%s not recorded: %s", header.control_id if header else "?", type(exc).__name__
            )
            self._metrics.hl7_messages.labels("in", header.message_type if header else "", "AE").inc()
            refused = Refused("AE", "the order could not be recorded; send it again", "207")
            return messages.refusal_ack(header, refused, *self._us())
        log.info(
            "hl7 order control_id=%s type=%s control=%s: %s, %d items re-prioritised, %d cancelled",
            header.control_id,
            header.message_type,
            order.order_control,
            applied.status,
            applied.reprioritised,
            applied.cancelled,
        )
        self._metrics.hl7_messages.labels("in", header.message_type, "AA").inc()
        return messages.ack(header, "AA", "", *self._us())

    def _us(self) -> tuple[str, str, str]:
        return self._config.sending_application, self._config.sending_facility, f"A{time.time_ns()}"[:20]


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
