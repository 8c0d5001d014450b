"""Outgoing DICOM: C-ECHO and C-STORE as a service class user.

Files are sent as stored, without decoding (pynetdicom's chunked send): the
peer gets the bytes we received, in their transfer syntax. `dicomnode send`
and the export outbox share this path.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.dicom import status
from dicomnode.dicom.uids import is_valid_uid
from dicomnode.errors import DicomnodeError

_config.STORE_SEND_CHUNKED_DATASET = True
MAX_CONTEXTS = 128  # PS3.8: at most 128 presentation contexts per association
_DEST_RE = re.compile(r"^(?P<tls>tls:)?(?P<ae>[^@]{1,16})@(?P<host>\[[^\]]+\]|[^:]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int
    tls: ssl.SSLContext | None = None  # None with wants_tls: the system's default trust store
    wants_tls: bool = False

    @classmethod
    def parse(cls, text: str, tls: ssl.SSLContext | None = None) -> Destination:
        """Parse 'AE@HOST:PORT', or 'tls:AE@HOST:PORT' for DICOM over TLS (IPv6 hosts in brackets).
        `tls` is the client context for TLS destinations (our CA and certificate); default: system CAs."""
        m = _DEST_RE.match(text.strip())
        if not m or not 0 < int(m["port"]) < 65536:
            raise ValueError(f"destination must look like AE@HOST:PORT or tls:AE@HOST:PORT, got {text!r}")
        wants_tls = bool(m["tls"])
        return cls(m["ae"], m["host"].strip("[]"), int(m["port"]), tls if wants_tls else None, wants_tls)

    def __str__(self) -> str:
        return f"{'tls:' if self.wants_tls else ''}{self.ae_title}@{self.host}:{self.port}"


class AssociationFailed(DicomnodeError, ConnectionError):
    """The peer could not be reached or refused the association."""


@dataclass(frozen=True)
class SendResult:
    path: Path
    sop_instance_uid: str | None
    status: int | None  # DIMSE status from the peer; None when nothing was sent
    error: str | None = None

    @property
    def ok(self) -> bool:
        return status.is_stored(self.status)


@dataclass(frozen=True)
class _Outgoing:
    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str


def echo(dest: Destination, calling_ae: str = "DICOMNODE", timeout_s: float = 30) -> int:
    """C-ECHO the destination; return the DIMSE status or raise AssociationFailed."""
    ae = client_ae(calling_ae, timeout_s)
    ae.add_requested_context(Verification)
    assoc = associate(ae, dest)
    try:
        rsp = assoc.send_c_echo()
        if not rsp or "Status" not in rsp:
            raise AssociationFailed(f"{dest}: no C-ECHO response (timeout or abort)")
        return int(rsp.Status)
    finally:
        assoc.release()


def send_files(
    paths: Iterable[Path],
    dest: Destination,
    calling_ae: str = "DICOMNODE",
    on_result: Callable[[SendResult], None] | None = None,
    timeout_s: float = 60,
) -> list[SendResult]:
    """C-STORE each file to `dest`, reusing associations; one SendResult per path."""
    results: list[SendResult] = []

    def emit(result: SendResult) -> None:
        results.append(result)
        if on_result:
            on_result(result)

    outgoing = []
    for path in paths:
        item = _describe(path)
        if isinstance(item, SendResult):
            emit(item)
        else:
            outgoing.append(item)
    for batch in _batches_by_context(outgoing):
        _send_batch(batch, dest, calling_ae, timeout_s, emit)
    return results


def _describe(path: Path) -> _Outgoing | SendResult:
    try:
        meta = read_file_meta_info(path)
        item = _Outgoing(
            path,
            str(meta.MediaStorageSOPClassUID),
            str(meta.MediaStorageSOPInstanceUID),
            str(meta.TransferSyntaxUID),
        )
    except (InvalidDicomError, AttributeError, OSError) as exc:
        return SendResult(path, None, None, f"not a DICOM Part 10 file: {type(exc).__name__}")
    if not all(is_valid_uid(u) for u in (item.sop_class_uid, item.sop_instance_uid)):
        return SendResult(path, None, None, "file meta has an invalid SOP Class/Instance UID")
    return item


def _batches_by_context(items: list[_Outgoing]) -> list[list[_Outgoing]]:
    """Split so that no association needs more than 128 presentation contexts."""
    batches: list[list[_Outgoing]] = []
    contexts: set[tuple[str, str]] = set()
    for item in items:
        key = (item.sop_class_uid, item.transfer_syntax_uid)
        if not batches or (key not in contexts and len(contexts) >= MAX_CONTEXTS):
            batches.append([])
            contexts = set()
        contexts.add(key)
        batches[-1].append(item)
    return batches


def _send_batch(
    batch: list[_Outgoing],
    dest: Destination,
    calling_ae: str,
    timeout_s: float,
    emit: Callable[[SendResult], None],
) -> None:
    ae = client_ae(calling_ae, timeout_s)
    for sop_class, ts in sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in batch}):
        ae.add_requested_context(sop_class, ts)
    try:
        assoc = associate(ae, dest)
    except AssociationFailed as exc:
        for item in batch:
            emit(SendResult(item.path, item.sop_instance_uid, None, str(exc)))
        return
    try:
        for item in batch:
            emit(_send_one(assoc, item))
    finally:
        if assoc.is_established:
            assoc.release()


def _send_one(assoc: Association, item: _Outgoing) -> SendResult:
    if not assoc.is_established:
        return SendResult(item.path, item.sop_instance_uid, None, "association lost")
    try:
        rsp = assoc.send_c_store(item.path)
    except (ValueError, AttributeError, OSError) as exc:
        # e.g. the peer accepted no context for this SOP class/transfer syntax
        return SendResult(item.path, item.sop_instance_uid, None, f"not sent: {exc}")
    if not rsp or "Status" not in rsp:
        return SendResult(item.path, item.sop_instance_uid, None, "no response (timeout or abort)")
    comment = str(rsp.get("ErrorComment", "")) or None
    return SendResult(item.path, item.sop_instance_uid, int(rsp.Status), comment)


def client_ae(calling_ae: str, timeout_s: float) -> AE:
    ae = AE(ae_title=calling_ae)
    ae.maximum_pdu_size = 0
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout_s
    return ae


def associate(ae: AE, dest: Destination) -> Association:
    context = dest.tls or (ssl.create_default_context() if dest.wants_tls else None)
    tls_args = (context, dest.host) if context else None
    try:
        assoc = ae.associate(
            dest.host,
            dest.port,
            ae_title=dest.ae_title,
            tls_args=tls_args,
            evt_handlers=SEND_AT_ONCE,
        )
    except OSError as exc:
        raise AssociationFailed(f"{dest}: {exc}") from None
    if assoc.is_established:
        return assoc
    if assoc.is_rejected:
        rj = assoc.acceptor.primitive
        reason = status.rejection_reason(rj.result, rj.result_source, rj.diagnostic)
        raise AssociationFailed(f"{dest}: association rejected: {reason}")
    raise AssociationFailed(f"{dest}: association failed (no answer, aborted or refused)")


def _no_delay(event: evt.Event) -> None:
    """Send each PDU at once. Without TCP_NODELAY, Nagle holds back the short tail of a data set's last PDU until
    the peer's delayed ACK (40 ms on Linux): a C-STORE took 48-90 ms on loopback instead of a few ms, and each
    result sent to the PACS waited so (the listener sets it on accepted sockets for the same reason)."""
    event.assoc.dul.socket.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# The handlers of every association we request: ours (exports, `dicomnode send`) and C-MOVE's to its destination.
SEND_AT_ONCE = [(evt.EVT_CONN_OPEN, _no_delay)]
