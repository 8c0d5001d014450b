"""Admission before resources: which connections may exist before their A-ASSOCIATE-RQ is read.

pynetdicom gives every TCP connection a thread, counts it against maximum_associations before the
A-ASSOCIATE-RQ is read, and buffers a PDU of whatever length the peer declares. So anyone who can
reach the port could take every slot with idle or trickling sockets, or the memory with one PDU
header. The gate decides at accept(), from the address alone (per-address and pending caps, a
share for addresses outside the allowlist); gives each connection a deadline for its TLS handshake
and association request; counts only admitted associations against max_associations; and its
socket aborts a peer whose PDU header declares more than we accept, before buffering it.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pynetdicom import evt
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.transport import AssociationSocket, RequestHandler, ThreadedAssociationServer

from dicomnode.config.dicom import DicomConfig
from dicomnode.dicom import fastpath
from dicomnode.dicom.answering import AnsweringQueue
from dicomnode.dicom.connections import ConnectionTable, SlotState
from dicomnode.ops.metrics import NodeMetrics

log = logging.getLogger(__name__)

# An A-ASSOCIATE-RQ proposing all 128 presentation contexts, each with a dozen transfer
# syntaxes, is about 40 KiB; anything larger before association is not a DICOM peer.
ASSOCIATION_REQUEST_MAX_BYTES = 64 * 1024
# PS3.8 9.2: from Sta6 (the A-ASSOCIATE-AC sent, by the DUL thread that also reads) until the release ends.
_ASSOCIATED_STATES = frozenset({"Sta6", "Sta7", "Sta8", "Sta9", "Sta10", "Sta11", "Sta12"})
_LOG_EVERY_S = 10.0  # one warning per address and reason in this window; the metric counts them all
_NOT_OUR_TURN_S = 0.001  # a receiver that leaves a connection to another looks again after this


@dataclass(eq=False)
class Connection:
    address: str
    trusted: bool  # the address belongs to an allowed peer
    deadline: float  # monotonic time by which the association request must be read
    sock: socket.socket | None = None
    assoc: Any = None  # the pynetdicom Association serving it, once made
    admitted: bool = False
    expired: bool = False  # past its deadline: socket shut, thread ending
    woken: bool = False  # its thread was told to stop waiting for a request that cannot come
    closed: bool = False  # ended before an association was made (TLS handshake, handler error)
    slot: int = -1  # its place in the ConnectionTable

    def live(self) -> bool:
        if self.closed:
            return False
        return self.assoc is None or self.assoc.ident is None or self.assoc.is_alive()


@dataclass
class ConnectionGate:
    """The gate of one receiver; with several receivers (`dicom.receivers`), `table` is shared by all of them and
    the caps count every receiver's connections."""

    dicom: DicomConfig
    is_peer_address: Callable[[str], bool]
    metrics: NodeMetrics
    clock: Callable[[], float] = time.monotonic
    table: ConnectionTable | None = None
    receiver: int = 0  # this gate's row in the table
    _connections: list[Connection] = field(default_factory=list)
    _last_logged: dict[tuple[str, str], float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.table is None:
            self.table = ConnectionTable.for_config(self.dicom, receivers=1)
        self._table: ConnectionTable = self.table

    def open(self, sock: socket.socket, address: str) -> Connection | None:
        """A new TCP connection: its Connection, or None (refused, logged and counted) if it may not exist."""
        trusted = self.is_peer_address(address)
        with self._table.locked():
            self._prune()
            counts = self._table.counts(address)
            refusal = None
            if counts.same_address >= self.dicom.max_connections_per_address:
                refusal = ("per_address_limit", f"{self.dicom.max_connections_per_address} connections already open")
            elif counts.pending >= self.dicom.max_pending_connections:
                refusal = ("pending_limit", f"{counts.pending} connections not yet associated")
            elif not trusted and counts.strangers >= self.dicom.max_stranger_connections:
                refusal = ("stranger_limit", "address outside the allowlist and its share of connections is taken")
            if refusal is None:
                slot = self._table.claim(self.receiver, address, SlotState.PENDING if trusted else SlotState.STRANGER)
                if slot is not None:
                    deadline = self.clock() + self.dicom.association_request_timeout_s
                    conn = Connection(address, trusted, deadline, sock, slot=slot)
                    self._connections.append(conn)
                    return conn
                refusal = ("pending_limit", "this receiver's connections are all taken")
        self.refused(address, *refusal)
        return None

    def has_turn(self) -> bool:
        """Whether this receiver should accept the next connection (the fewest live connections)."""
        return self._table.has_turn(self.receiver)

    def mark_running(self) -> None:
        self._table.mark_running(self.receiver)

    def connection(self, sock: socket.socket) -> Connection | None:
        with self._table.locked():
            return next((c for c in self._connections if c.sock is sock), None)

    def admit(self, assoc: Any) -> bool:
        """The association request passed the policy: False if max_associations are already admitted."""
        with self._table.locked():
            live = self._prune()
            conn = next((c for c in live if c.assoc is assoc), None)
            if self._table.admitted() >= self.dicom.max_associations:
                return False
            if conn is not None:
                conn.admitted = True
                self._table.set(self.receiver, conn.slot, SlotState.ADMITTED)
            return True

    def close(self, conn: Connection) -> None:
        with self._table.locked():
            conn.closed = True
            self._prune()

    def ended(self, assoc: Any) -> None:
        """An association's thread is ending: its place is free for every receiver at once (not at this
        receiver's next decision or poll)."""
        with self._table.locked():
            for conn in self._connections:
                if conn.assoc is assoc:
                    conn.closed = True
            self._prune()

    def close_association(self, assoc: Any) -> None:
        """The transport closed (EVT_CONN_CLOSE): if the association never got its request, let its thread end."""
        with self._table.locked():
            conn = next((c for c in self._connections if c.assoc is assoc), None)
        if conn is not None:
            _wake_if_waiting(conn)

    def expire(self) -> None:
        """Cut connections that have not delivered their association request in time (idle or trickling), and
        end the threads of connections that died before sending one (pynetdicom would keep them for acse_timeout).
        A connection counts until its thread has ended, so threads stay bounded by the caps."""
        now = self.clock()
        with self._table.locked():
            pending = [c for c in self._prune() if not c.admitted]
        for conn in pending:
            if conn.assoc is not None and conn.assoc.requestor.primitive is not None:
                continue  # its request arrived: the association is being decided, not late
            if now >= conn.deadline and not conn.expired:
                conn.expired = True
                self.refused(
                    conn.address,
                    "request_timeout",
                    f"no association request within {self.dicom.association_request_timeout_s:g} s",
                )
                _shut(conn.sock)
            _wake_if_waiting(conn)

    def refused(self, address: str, label: str, reason: str) -> None:
        self.metrics.associations.labels("rejected", label).inc()
        now = self.clock()
        key = (address, label)
        if now - self._last_logged.get(key, -_LOG_EVERY_S) >= _LOG_EVERY_S:
            if len(self._last_logged) > 10_000:  # many addresses: forget those outside the window
                self._last_logged = {k: t for k, t in self._last_logged.items() if now - t < _LOG_EVERY_S}
            self._last_logged[key] = now
            log.warning("connection from %s refused: %s", address, reason)

    def _prune(self) -> list[Connection]:
        """Caller holds the table's lock."""
        live = []
        for conn in self._connections:
            if conn.live():
                live.append(conn)
            else:
                self._table.set(self.receiver, conn.slot, SlotState.FREE)
        self._connections = live
        return live


class GatedServer(ThreadedAssociationServer):
    """pynetdicom's threaded server with the gate at accept() and the TLS handshake moved off the accept loop
    (pynetdicom does it in the accepting thread, so one slow handshake would stall every sender).

    With several receivers (`dicom.receivers`), every receiver accepts on one listening socket, made by receiver 0
    and handed to the others (`listening`), and takes a connection only in its turn (the fewest live connections,
    ConnectionTable.has_turn). SO_REUSEPORT, which this replaced, lets the kernel pick by a hash of the addresses:
    four scanners sending at once landed 4/0 or 3/1 on two receivers in most runs, one process doing the work of
    three while the other idled."""

    request_queue_size = 128  # socketserver's 5 drops the SYNs of a burst of senders; the gate decides instead

    def __init__(
        self,
        *args: Any,
        gate: ConnectionGate,
        begin_store: fastpath.Begin,
        shared: bool = False,
        listening: socket.socket | None = None,
        **kwargs: Any,
    ) -> None:
        """`shared`: the listening socket is every receiver's; `listening`: that socket, made by receiver 0 (this
        server then neither binds nor listens)."""
        self.gate = gate
        self.begin_store = begin_store
        self._shared = shared or listening is not None
        self._adopted = listening
        super().__init__(*args, request_handler=GatedHandler, **kwargs)
        gate.mark_running()  # from now on, not only from its loop's first turn: the first senders wait for it too

    def server_bind(self) -> None:
        if self._adopted is not None:
            self.socket.close()  # type: ignore[union-attr]
            self.socket = self._adopted
            self.server_address = self.socket.getsockname()
        else:
            super().server_bind()
        if self._shared:
            # Every receiver is woken by a new connection and only one accept succeeds: the others must get
            # BlockingIOError at once, not wait in accept() (pynetdicom sets a timeout on the socket).
            self.socket.setblocking(False)  # type: ignore[union-attr]

    def server_activate(self) -> None:
        if self._adopted is None:
            super().server_activate()

    def server_close(self) -> None:
        if self._shared:  # shutdown() would stop the socket listening for every receiver: only let go of ours
            self.socket.close()  # type: ignore[union-attr]
        else:
            super().server_close()

    def get_request(self) -> tuple[socket.socket, tuple[str, int]]:
        if self._shared and not self.gate.has_turn():
            time.sleep(_NOT_OUR_TURN_S)  # the receiver whose turn it is takes it meanwhile (or it is still here)
            raise BlockingIOError("another receiver's turn")  # socketserver goes back to select()
        client, address = self.socket.accept()  # type: ignore[union-attr]
        # Answers are small segments sent right after the peer's data: without this, Nagle holds one back until
        # the peer's delayed ACK (up to 40 ms on Linux), as dcmtk's tools do without TCP_NODELAY.
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ssl_context:
            client = self.ssl_context.wrap_socket(client, server_side=True, do_handshake_on_connect=False)
        return client, address

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.gate.open(request, str(client_address[0])) is not None

    def service_actions(self) -> None:
        super().service_actions()
        self.gate.mark_running()
        self.gate.expire()

    def shutdown_request(self, request: Any) -> None:
        conn = self.gate.connection(request)
        if conn is not None:
            self.gate.close(conn)
        super().shutdown_request(request)


class GatedHandler(RequestHandler):
    server: GatedServer

    def handle(self) -> None:
        gate = self.server.gate
        conn = gate.connection(self.request)
        if conn is None:  # expired between accept and now
            return
        if isinstance(self.request, ssl.SSLSocket) and not self._handshake(conn):
            gate.close(conn)
            _shut(self.request)
            return
        conn.assoc = self._create_association()
        evt.trigger(conn.assoc, evt.EVT_CONN_OPEN, {"address": self.client_address})  # as pynetdicom's handle()
        conn.assoc.start()

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        # pynetdicom makes its AssociationSocket inline, and the constructor queues the transport
        # event, so a second socket cannot be made: the class is narrowed in place (no new state).
        assoc.dul.socket.__class__ = BoundedSocket
        assoc.dimse.msg_queue = AnsweringQueue(assoc, self.server.gate.metrics)
        fastpath.install(assoc, self.server.begin_store)
        return assoc

    def _handshake(self, conn: Connection) -> bool:
        sock: ssl.SSLSocket = self.request
        previous = sock.gettimeout()
        sock.settimeout(max(conn.deadline - time.monotonic(), 0.01))
        try:
            sock.do_handshake()
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or type(exc).__name__
            self.server.gate.refused(conn.address, "tls_handshake", f"TLS handshake failed ({reason})")
            return False
        finally:
            sock.settimeout(previous)
        return True


class BoundedSocket(AssociationSocket):
    """Reads a PDU header, and aborts before reading a body longer than this node accepts."""

    _next_is_header = True
    _refusing = False

    def recv(self, nr_bytes: int) -> bytearray:
        if self._refusing:
            return bytearray()  # pynetdicom sees a short PDU and closes the connection
        data = fastpath.read_exactly(self.socket, nr_bytes)  # type: ignore[arg-type]
        if not self._next_is_header:
            self._next_is_header = True
            return data
        self._next_is_header = False
        if len(data) == 6:
            pdu_type, _, length = struct.unpack(">BBL", data)
            limit = self._limit()
            if limit and length > limit:
                self._refuse(pdu_type, length, limit)
        return data

    def _limit(self) -> int:
        # The DUL's own state, not assoc.is_established: the association thread sets that after the
        # A-ASSOCIATE-AC has gone, and a peer's first P-DATA may already be here (seen with four storescu at once).
        if self.assoc.dul.state_machine.current_state not in _ASSOCIATED_STATES:
            return ASSOCIATION_REQUEST_MAX_BYTES
        return int(self.assoc.acceptor.maximum_length or 0)

    def _refuse(self, pdu_type: int, length: int, limit: int) -> None:
        self._refusing = True
        server = self.assoc._server
        address = self.assoc.requestor.address
        server.gate.refused(address, "pdu_too_large", f"PDU type {pdu_type:#04x} of {length} bytes over {limit}")
        abort = A_ABORT_RQ()
        abort.source = 0x02  # service provider
        abort.reason_diagnostic = 0x06  # invalid PDU parameter value
        with contextlib.suppress(OSError):
            self.send(abort.encode())


def _wake_if_waiting(conn: Connection) -> None:
    """An acceptor thread waits acse_timeout for the A-ASSOCIATE-RQ even when its DUL thread has already ended
    (connection closed, garbage received). pynetdicom treats an empty queue item as that timeout."""
    assoc = conn.assoc
    if conn.woken or assoc is None or assoc.ident is None or assoc.requestor.primitive is not None:
        return
    if assoc.dul.ident is not None and not assoc.dul.is_alive():  # started, and ended (not: not yet started)
        conn.woken = True
        assoc.dul.to_user_queue.put(None)


def _shut(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
