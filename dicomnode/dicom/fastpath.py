"""Where pynetdicom itself is the cost of receiving: the changes to its DUL and DIMSE layers, in one place.

Measured on one association of 300 CT instances (py-spy, dcmtk storescu): pynetdicom spent more time than our
whole ingest. Its two threads per association poll with 1 ms sleeps (the DUL reactor, and the association
reactor before every message), it reads a PDU in 4 KiB pieces, encodes each C-STORE response through pydicom,
and holds each data set in memory (a 2 GB instance costs 2 GB). Here, for the associations our listener accepts:

- the DUL reactor sleeps in `select` on its socket and a wake-up pipe that every queue put writes to, so a
  response or an incoming PDU is handled at once instead of after the next 1 ms tick;
- the association reactor (FastAssociation: pynetdicom's loop, same checks in the same order) waits on its
  message queue instead of sleeping 1 ms before each look;
- a PDU body is read with `recv_into` in one buffer (gate.BoundedSocket uses `read_exactly`), not 4 KiB pieces;
- a C-STORE-RQ's data set fragments go to the `Incoming` that `begin` returns (a temp file on the storage
  filesystem), and the request primitive carries it to the handler as `incoming`;
- a C-STORE-RSP is encoded here (tests compare the bytes with pynetdicom's own encoder).

Everything else (association negotiation, the state machine, other services) is pynetdicom's, unchanged.
Written against pynetdicom 3.0.4 (pyproject pins it); its internals named here are `_target`,
`_dul_ready`, `_reactor_checkpoint`, `_kill_thread`, `DIMSEMessage.decode_msg` and `message_to_primitive`.
"""

from __future__ import annotations

import contextlib
import queue
import select
import socket
import struct
from collections.abc import Callable
from typing import Any, Protocol

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages, evt
from pynetdicom.association import Association
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dul import DULServiceProvider
from pynetdicom.pdu import A_ABORT_RQ
from pynetdicom.pdu_primitives import P_DATA
from pynetdicom.utils import make_target

from dicomnode.dicom.filemeta import padded_to_even

_IDLE_WAIT_S = 0.02  # longest a reactor sleeps without a wake-up: timers (ARTIM, idle) and kill flags are polled
_MESSAGE_WAIT_S = 0.005  # the association reactor also polls for release and abort between messages
_RECV_CHUNK = 1024**2


class Receiving(Protocol):
    """Where one C-STORE-RQ's data set goes as it arrives (dicomnode.receive.incoming.Incoming)."""

    def write(self, chunk: bytes | memoryview) -> None: ...

    def discard(self) -> None: ...


Begin = Callable[[Any, Dataset, int], Receiving]  # (association, command set, context ID) -> where the data goes


def install(assoc: Any, begin: Begin) -> None:
    """Switch a freshly created acceptor association (its threads not yet started) to the fast path."""
    dul = assoc.dul
    dul.__class__ = FastDUL
    dul._target = make_target(dul.run_reactor)  # the thread's target was bound to the old class's method
    # A socket pair, not a pipe's bare fds: a put after the reactor closed it must fail, not write to whatever
    # file reused the number.
    dul.wake_r, dul.wake_w = socket.socketpair()
    dul.wake_r.setblocking(False)
    dul.wake_w.setblocking(False)
    for name in ("event_queue", "to_provider_queue"):
        old = getattr(dul, name)
        new = WakingQueue(dul)
        while not old.empty():  # the socket's constructor already queued the connection event
            new.put(old.get_nowait())
        setattr(dul, name, new)
    dimse = assoc.dimse
    dimse.__class__ = StreamingDIMSE
    dimse.begin = begin
    assoc.__class__ = FastAssociation


def read_exactly(sock: socket.socket, nr_bytes: int) -> bytearray:
    """`nr_bytes` from the socket in one buffer (fewer if the peer closes first), as pynetdicom's recv returns."""
    buffer = bytearray(nr_bytes)
    view = memoryview(buffer)
    got = 0
    while got < nr_bytes:
        n = sock.recv_into(view[got:], min(nr_bytes - got, _RECV_CHUNK))
        if not n:
            view.release()
            del buffer[got:]
            return buffer
        got += n
    view.release()
    return buffer


class FastAssociation(Association):
    """pynetdicom's acceptor loop without its 1 ms sleep before every look at the message queue (StreamingDIMSE's
    look waits for a message instead); the checks and their order are pynetdicom's. Its end frees its place in the
    connection gate at once (the gate's table is shared by every receiver process)."""

    def run(self) -> None:
        try:
            super().run()
        finally:
            self._server.gate.ended(self)

    def _run_reactor(self) -> None:
        self._is_paused = False
        while not self._kill:
            self._is_paused = True
            self._reactor_checkpoint.wait()  # send_*() calls pause the reactor (pynetdicom's race fix)
            self._is_paused = False
            context_id, msg = self.dimse.get_msg(block=False)
            if msg:
                self._serve_request(msg, context_id)
            if self.is_established and self.acse.is_release_requested():
                # Released before the A-RELEASE-RP goes out (pynetdicom sets it after): the peer may close the
                # connection, and EVT_CONN_CLOSE fire in the DUL thread, before this thread goes on.
                self.is_released = True
                self.is_established = False
                self.acse.send_release(is_response=True)
                evt.trigger(self, evt.EVT_RELEASED, {})
                self.kill()
                return
            if self.acse.is_aborted():
                self.dul.receive_pdu(wait=False)  # so that EVT_ACSE_RECV fires
                self.is_aborted = True
                self.is_established = False
                evt.trigger(self, evt.EVT_ABORTED, {})
                self.kill()
                return
            if not self.dul.is_alive():
                self.kill()
                return
            if self.dul.idle_timer_expired():
                self.abort()  # network_timeout_response is pynetdicom's default, A-ABORT
                self.kill()
                return


class WakingQueue(queue.Queue):
    """A queue that wakes the DUL reactor when something is put on it while it sleeps."""

    def __init__(self, dul: FastDUL) -> None:
        super().__init__()
        self._dul = dul

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        if self._dul.sleeping:
            with contextlib.suppress(OSError):  # full (already woken) or closed (reactor ended)
                self._dul.wake_w.send(b"\0")


class FastDUL(DULServiceProvider):
    """pynetdicom's DUL reactor loop, sleeping in select() instead of time.sleep(0.001)."""

    wake_r: socket.socket
    wake_w: socket.socket
    sleeping = False  # set before the reactor's last look at its queues, so that a put after that look wakes it

    def run_reactor(self) -> None:
        try:
            self._run()
        finally:
            self.wake_r.close()
            self.wake_w.close()

    def _run(self) -> None:
        self._idle_timer.start()
        while True:
            if not self.assoc._dul_ready.is_set():
                self.assoc._dul_ready.set()
            if self._kill_thread:
                return
            if self.artim_timer.expired:
                self.event_queue.put("Evt18")
            try:
                if self._process_recv_primitive():
                    pass
                elif self._is_transport_event():
                    self._idle_timer.restart()
            except Exception:  # as pynetdicom's reactor does: abort, bypassing the state machine
                self._abort_broken()
                return
            try:
                event = self.event_queue.get(block=False)
            except queue.Empty:
                self._wait()
                continue
            self.state_machine.do_action(event)

    def _wait(self) -> None:
        """Until the socket has data, a queue was put to, or a short timeout (timers, kill flag)."""
        sock = self.socket.socket if self.socket is not None else None
        watched: list[Any] = [self.wake_r]
        if sock is not None and sock.fileno() != -1:
            if getattr(sock, "pending", None) and sock.pending():  # TLS bytes already decrypted
                return
            watched.append(sock)
        self.sleeping = True
        try:
            if self.event_queue.queue or self.to_provider_queue.queue:
                return
            ready, _, _ = select.select(watched, [], [], _IDLE_WAIT_S)
        except (OSError, ValueError):  # the socket closed under us: the next loop sees it
            return
        finally:
            self.sleeping = False
        if self.wake_r in ready:
            with contextlib.suppress(OSError):
                while self.wake_r.recv(4096):
                    pass

    def _abort_broken(self) -> None:
        abort = A_ABORT_RQ()
        abort.source = 0x02
        abort.reason_diagnostic = 0x00
        with contextlib.suppress(Exception):
            self.socket.send(abort.encode())
        self.assoc.is_aborted = True
        self.assoc.is_established = False
        self.assoc._kill = True
        self._kill_thread = True


class C_STORE_RQ(dimse_messages.C_STORE_RQ):  # noqa: N801 - pynetdicom maps a message to its primitive by class name
    """A C-STORE-RQ whose data set was streamed to `incoming` instead of held in memory."""

    incoming: Receiving | None = None

    def message_to_primitive(self) -> Any:
        primitive = super().message_to_primitive()
        primitive.incoming = self.incoming
        return primitive


class StreamingDIMSE(DIMSEServiceProvider):
    begin: Begin

    def get_msg(self, block: bool = False) -> Any:
        if block:
            return super().get_msg(block)
        try:  # the reactor's look between its checks for release and abort: wait a moment for a message
            return self.msg_queue.get(timeout=_MESSAGE_WAIT_S)
        except queue.Empty:
            return None, None

    def receive_primitive(self, primitive: P_DATA) -> None:
        """pynetdicom decodes commands; data set fragments of a C-STORE-RQ go to its `incoming`."""
        for context_id, data in primitive.presentation_data_value_list:
            message = self.message
            incoming = message.incoming if isinstance(message, C_STORE_RQ) else None
            if incoming is not None and not data[0] & 1:
                with memoryview(data) as view:
                    incoming.write(view[1:])
                if data[0] & 2:  # the last fragment: pynetdicom completes the message (an empty last fragment)
                    super().receive_primitive(_pdata(context_id, b"\x02"))
                continue
            super().receive_primitive(_pdata(context_id, data))
            message = self.message
            if self._awaits_store_data(message):
                message.__class__ = C_STORE_RQ
                message.incoming = self.begin(self.assoc, message.command_set, context_id)

    @staticmethod
    def _awaits_store_data(message: Any) -> bool:
        """A C-STORE-RQ whose command is complete and whose data set is still to come."""
        return (
            type(message) is dimse_messages.C_STORE_RQ
            and getattr(message, "command_set", None) is not None
            and message.command_set.get("CommandDataSetType", 0x0101) != 0x0101
        )

    def discard_unfinished(self) -> None:
        """The connection closed: remove what was received of instances that will never be answered."""
        message, self.message = self.message, None
        if isinstance(message, C_STORE_RQ) and message.incoming is not None:
            message.incoming.discard()
        while True:
            try:
                _, pending = self.msg_queue.get_nowait()
            except queue.Empty:
                return
            receiving = getattr(pending, "incoming", None)
            if receiving is not None:
                receiving.discard()

    def send_msg(self, primitive: Any, context_id: int) -> None:
        if isinstance(primitive, C_STORE) and primitive.MessageIDBeingRespondedTo is not None:
            self.dul.send_pdu(_pdata(context_id, b"\x03" + store_response_command(primitive)))
            return
        super().send_msg(primitive, context_id)


def _pdata(context_id: int, data: bytes | bytearray) -> P_DATA:
    pdata = P_DATA()
    pdata._presentation_data_value_list = [(context_id, data)]  # the setter type-checks each PDV: this is one
    return pdata


def store_response_command(rsp: C_STORE) -> bytes:
    """The command set of a C-STORE-RSP, implicit VR little endian (PS3.7 9.3.1.2), as pynetdicom encodes it."""
    elements = [_element(0x0002, _uid(rsp.AffectedSOPClassUID))] if rsp.AffectedSOPClassUID else []
    elements += [
        _element(0x0100, struct.pack("<H", 0x8001)),
        _element(0x0120, struct.pack("<H", rsp.MessageIDBeingRespondedTo)),
        _element(0x0800, struct.pack("<H", 0x0101)),  # no data set
        _element(0x0900, struct.pack("<H", rsp.Status)),
    ]
    if rsp.ErrorComment:
        elements.append(_element(0x0902, padded_to_even(str(rsp.ErrorComment).encode("ascii", "replace"), b" ")))
    if rsp.AffectedSOPInstanceUID:
        elements.append(_element(0x1000, _uid(rsp.AffectedSOPInstanceUID)))
    body = b"".join(elements)
    return _element(0x0000, struct.pack("<L", len(body))) + body


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def _uid(uid: str) -> bytes:
    return padded_to_even(str(uid).encode("ascii", "replace"), b"\x00")  # the peer's UID, whatever it is
