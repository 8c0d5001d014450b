"""A DICOM peer written from the PDU bytes up, for messages no well-behaved library will send.

pynetdicom and dcmtk validate what they send; a hostile or broken peer does not. This peer
negotiates with a real A-ASSOCIATE-RQ (encoded by pynetdicom's PDU classes) and then writes
P-DATA-TF PDUs by hand, so a test can send an empty UID, a 70-character UID or no data set.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from io import BytesIO

from pydicom.dataset import Dataset
from pydicom.filewriter import write_dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context
from pynetdicom.pdu import A_ASSOCIATE_RQ
from pynetdicom.pdu_primitives import A_ASSOCIATE, MaximumLengthNotification

VERIFICATION = "1.2.840.10008.1.1"


@dataclass
class RawPeer:
    """One association on a plain socket; contexts are proposed with odd IDs from 1."""

    host: str
    port: int
    called_ae: str
    calling_ae: str = "RAWSCU"
    abstract_syntaxes: tuple[str, ...] = (VERIFICATION,)
    transfer_syntax: str = ExplicitVRLittleEndian
    timeout: float = 10
    sock: socket.socket = field(init=False)
    _message_id: int = field(default=0, init=False)

    def associate(self) -> int:
        """Send the A-ASSOCIATE-RQ; return the PDU type of the answer (2 accepted, 3 rejected)."""
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.sendall(self.association_request())
        pdu_type, _ = self.read_pdu()
        return pdu_type

    def association_request(self) -> bytes:
        primitive = A_ASSOCIATE()
        primitive.application_context_name = "1.2.840.10008.3.1.1.1"
        primitive.calling_ae_title = self.calling_ae
        primitive.called_ae_title = self.called_ae
        contexts = []
        for i, uid in enumerate(self.abstract_syntaxes):
            context = build_context(uid, [self.transfer_syntax])
            context.context_id = 2 * i + 1
            contexts.append(context)
        primitive.presentation_context_definition_list = contexts
        max_length = MaximumLengthNotification()
        max_length.maximum_length_received = 16384
        primitive.user_information = [max_length, _implementation_uid()]
        pdu = A_ASSOCIATE_RQ()
        pdu.from_primitive(primitive)
        return pdu.encode()

    def read_pdu(self) -> tuple[int, bytes]:
        header = self._read_exactly(6)
        pdu_type, _, length = struct.unpack(">BBL", header)
        return pdu_type, self._read_exactly(length)

    def _read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            chunk = self.sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError(f"connection closed after {len(out)} of {n} bytes")
            out += chunk
        return bytes(out)

    def c_store(self, sop_class: str, sop_instance: str, data: bytes | None, context_id: int = 1) -> Dataset:
        """Send a C-STORE-RQ with these UIDs exactly as given, then `data` (None: no data set at all)."""
        command = self._command(0x0001, sop_class, has_data=data is not None)
        command.Priority = 0
        command.AffectedSOPInstanceUID = sop_instance
        self._send_pdv(context_id, command_bytes(command), command=True)
        if data is not None:
            self._send_pdv(context_id, data, command=False)
        return self.read_response()

    def c_store_streamed(
        self, sop_class: str, sop_instance: str, chunks: Iterable[bytes], context_id: int = 1
    ) -> Dataset:
        """A C-STORE whose data set is sent as it is produced, one P-DATA-TF per chunk (keep chunks under the
        node's maximum PDU size): gigabytes without holding them in the test."""
        self.start_c_store(sop_class, sop_instance, context_id)
        pending: bytes | None = None
        for chunk in chunks:
            if pending is not None:
                self.send_data(pending, context_id, last=False)
            pending = chunk
        self.send_data(pending or b"", context_id, last=True)
        return self.read_response()

    def start_c_store(self, sop_class: str, sop_instance: str, context_id: int = 1) -> None:
        """The command of a C-STORE-RQ with a data set to follow (send_data sends it)."""
        command = self._command(0x0001, sop_class, has_data=True)
        command.Priority = 0
        command.AffectedSOPInstanceUID = sop_instance
        self._send_pdv(context_id, command_bytes(command), command=True)

    def send_data(self, value: bytes, context_id: int = 1, last: bool = True) -> None:
        pdv = struct.pack(">LBB", len(value) + 2, context_id, 0x02 if last else 0x00) + value
        self.sock.sendall(struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv)

    def c_echo(self, context_id: int = 1) -> Dataset:
        command = self._command(0x0030, VERIFICATION, has_data=False)
        self._send_pdv(context_id, command_bytes(command), command=True)
        return self.read_response()

    def _command(self, field: int, sop_class: str, has_data: bool) -> Dataset:
        command = Dataset()
        command.AffectedSOPClassUID = sop_class
        command.CommandField = field
        self._message_id += 1
        command.MessageID = self._message_id
        command.CommandDataSetType = 0x0000 if has_data else 0x0101
        return command

    def _send_pdv(self, context_id: int, value: bytes, command: bool) -> None:
        header = (0x01 if command else 0x00) | 0x02  # last fragment
        pdv = struct.pack(">LBB", len(value) + 2, context_id, header) + value
        self.sock.sendall(struct.pack(">BBL", 0x04, 0, len(pdv)) + pdv)

    def read_response(self) -> Dataset:
        """The command set of the next DIMSE message (its fragments joined); ConnectionError on A-ABORT."""
        command = bytearray()
        while True:
            pdu_type, body = self.read_pdu()
            if pdu_type == 0x07:
                raise ConnectionError("association aborted by the node")
            assert pdu_type == 0x04, f"unexpected PDU type {pdu_type:#04x}"
            pos, last = 0, False
            while pos < len(body):
                length, _, flags = struct.unpack(">LBB", body[pos : pos + 6])
                command += body[pos + 6 : pos + 4 + length]
                last = last or flags == 0x03
                pos += 4 + length
            if last:
                return read_command(bytes(command))

    def release(self) -> None:
        self.sock.sendall(struct.pack(">BBL", 0x05, 0, 4) + b"\x00" * 4)
        pdu_type, _ = self.read_pdu()
        assert pdu_type == 0x06, f"release answered with PDU type {pdu_type:#04x}"
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def command_bytes(command: Dataset) -> bytes:
    """Encode a command set (implicit VR little endian, group length first) without validating values."""
    body = BytesIO()
    write_dataset(_as_implicit(body), command)
    value = body.getvalue()
    return struct.pack("<HHLL", 0x0000, 0x0000, 4, len(value)) + value


def read_command(data: bytes) -> Dataset:
    from pydicom.filereader import read_dataset

    return read_dataset(BytesIO(data), is_implicit_VR=True, is_little_endian=True)


def _as_implicit(fp: BytesIO):  # noqa: ANN202
    from pydicom.filebase import DicomFileLike

    out = DicomFileLike(fp)
    out.is_little_endian = True
    out.is_implicit_VR = True
    return out


def _implementation_uid():  # noqa: ANN202
    from pynetdicom.pdu_primitives import ImplementationClassUIDNotification

    item = ImplementationClassUIDNotification()
    item.implementation_class_uid = "1.2.826.0.1.3680043.9.3811.9"
    return item


__all__ = ["RawPeer", "ImplicitVRLittleEndian"]
