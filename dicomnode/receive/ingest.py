"""Receive one instance: check it, store it durably, index it, and only then say Success.

Independent of pynetdicom's event objects so that the rules read top to bottom
and can be called from tests directly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pydicom.uid import UID
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.records import Receipt, instance_exists, record_instance
from dicomnode.config.dicom import DuplicatePolicy
from dicomnode.dicom import status
from dicomnode.dicom.filemeta import file_meta_bytes
from dicomnode.dicom.uids import InvalidUIDError, is_valid_uid, require_uid
from dicomnode.receive.header import InstanceHeader, UnreadableDataset, read_header
from dicomnode.receive.incoming import Incoming, Refusal, write_failure
from dicomnode.receive.reconcile import adopt
from dicomnode.receive.storage import BELOW_FLOOR, Storage
from dicomnode.receive.wellformed import InflatesTooLarge, MalformedDataset, check_complete, inflated

log = logging.getLogger(__name__)
# keep_first: another association placed the same instance a moment ago; its catalog row follows within
# milliseconds. Waited for this long before the file is taken for an orphan (a writer that failed to commit).
FIRST_COPY_ROW_WAIT_S = 2.0


@dataclass(frozen=True)
class StoreRequest:
    """A C-STORE as it arrived: command UIDs, negotiated syntax, peer, and raw data set bytes."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    calling_ae: str
    called_ae: str
    peer_address: str
    dataset: bytes = b""  # whole, for `Ingest.store`; the listener streams it through `begin` instead


@dataclass(frozen=True)
class StoreOutcome:
    status: int
    comment: str | None = None
    study_instance_uid: str | None = None  # of an instance now held (stored, or kept from before)


class Ingest:
    def __init__(
        self,
        storage: Storage,
        catalog: Engine,
        duplicate_policy: DuplicatePolicy,
        max_instance_bytes: int,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.duplicate_policy = duplicate_policy
        self.max_instance_bytes = max_instance_bytes

    def store(self, req: StoreRequest) -> StoreOutcome:
        """Receive `req.dataset` whole (the listener streams instead: begin, write as it arrives, complete)."""
        incoming = self.begin(req)
        incoming.write(req.dataset)
        return self.complete(req, incoming)

    def begin(self, req: StoreRequest) -> Incoming:
        """A C-STORE's command has arrived: where its data set goes (nowhere if the command is refused)."""
        refusal = self._check_request(req)
        if refusal:
            return Incoming.refused(refusal)
        meta = file_meta_bytes(req.sop_class_uid, req.sop_instance_uid, req.transfer_syntax_uid, req.calling_ae)
        temp = None
        try:
            temp = self.storage.open_temp()
            temp.write(meta)
        except OSError as exc:
            if temp is not None:
                temp.discard()
            return Incoming.refused(write_failure(exc))
        return Incoming(temp, len(meta), self.max_instance_bytes)

    def complete(self, req: StoreRequest, incoming: Incoming) -> StoreOutcome:
        """The whole data set has arrived: check it, place it, index it; the answer to send."""
        try:
            return self._complete(req, incoming)
        finally:
            incoming.discard()  # whatever was not placed in the archive

    def _complete(self, req: StoreRequest, incoming: Incoming) -> StoreOutcome:
        if incoming.refusal is not None:
            return _refuse(req, *incoming.refusal)
        with incoming.data_set() as data:
            checked = self._read_checked(req, data)
        if isinstance(checked, StoreOutcome):
            return checked
        header = checked
        try:
            path = self.storage.relative_path(
                header.study_instance_uid, header.series_instance_uid, req.sop_instance_uid
            )  # type: ignore[arg-type]
        except InvalidUIDError as exc:
            return _refuse(req, status.INVALID_UID, str(exc))
        receipt = Receipt(
            calling_ae=req.calling_ae,
            called_ae=req.called_ae,
            peer_address=req.peer_address,
            transfer_syntax_uid=req.transfer_syntax_uid,
            received_at=utcnow(),
        )
        return self._write_and_index(req, header, receipt, path, incoming)

    def _read_checked(self, req: StoreRequest, data: memoryview) -> InstanceHeader | StoreOutcome:
        """The catalog header of a whole data set that matches its request, else the refusal."""
        try:
            body, syntax = inflated(data, req.transfer_syntax_uid, self.max_instance_bytes)  # once, for both
            check_complete(body, syntax)
            header = read_header(body, syntax)
        except InflatesTooLarge as exc:
            return _refuse(req, status.OUT_OF_RESOURCES, str(exc))
        except (MalformedDataset, UnreadableDataset) as exc:
            return _refuse(req, status.CANNOT_UNDERSTAND, str(exc))
        if header.sop_instance_uid != req.sop_instance_uid:
            return _refuse(req, status.INSTANCE_UID_MISMATCH, "data set SOP Instance UID differs from request")
        if header.sop_class_uid != req.sop_class_uid:
            return _refuse(req, status.SOP_CLASS_MISMATCH, "data set SOP Class UID differs from request")
        return header

    def _check_request(self, req: StoreRequest) -> Refusal | None:
        for attribute, uid in (
            ("Affected SOP Class UID", req.sop_class_uid),
            ("Affected SOP Instance UID", req.sop_instance_uid),
        ):
            try:
                require_uid(attribute, uid)
            except InvalidUIDError as exc:
                return status.INVALID_UID, str(exc)
        if not UID(req.transfer_syntax_uid).is_transfer_syntax:
            return status.CANNOT_UNDERSTAND, "unknown transfer syntax"
        if self.storage.below_floor():
            return status.OUT_OF_RESOURCES, BELOW_FLOOR
        return None

    def _write_and_index(self, req, header, receipt, path, incoming) -> StoreOutcome:  # noqa: ANN001
        try:
            with self.catalog.connect() as conn:
                if self.duplicate_policy is DuplicatePolicy.KEEP_FIRST and instance_exists(conn, req.sop_instance_uid):
                    log.info("duplicate kept first sop=%s from=%s", req.sop_instance_uid, req.calling_ae)
                    return StoreOutcome(status.SUCCESS, study_instance_uid=header.study_instance_uid)  # idempotent
                # End the read before the write: in SQLite WAL a read transaction that
                # later writes fails (BUSY_SNAPSHOT) if another association committed.
                conn.rollback()
                if self.duplicate_policy is DuplicatePolicy.KEEP_FIRST:
                    try:
                        size = self.storage.place(incoming.temp, path, replace=False)
                    except FileExistsError:  # another copy was placed first
                        return self._first_copy(req, header, path, conn)
                    record_instance(conn, header, receipt, path, size)
                else:
                    # overwrite: the row first, so its locks (SQLite's write lock, PostgreSQL's row locks) are held
                    # while the file is replaced: of two copies stored at once, the last file is the last row's.
                    record_instance(conn, header, receipt, path, incoming.temp.size)
                    size = self.storage.place(incoming.temp, path, replace=True)
                conn.commit()  # only now, with the file durable, is the instance ours
        except OSError as exc:
            return _refuse(req, *write_failure(exc))
        except SQLAlchemyError as exc:
            return _refuse(req, status.OUT_OF_RESOURCES, f"catalog unavailable: {type(exc).__name__}")
        log.debug(
            "stored sop=%s study=%s from=%s bytes=%d",
            req.sop_instance_uid,
            header.study_instance_uid,
            req.calling_ae,
            size,
        )
        return StoreOutcome(status.SUCCESS, study_instance_uid=header.study_instance_uid)

    def _first_copy(self, req: StoreRequest, header: InstanceHeader, path: str, conn: Connection) -> StoreOutcome:
        """keep_first, and the instance's file is already in place: kept. Its row comes from the association that
        placed it (waited for); a file whose row never comes is an orphan, indexed here as reconcile would."""
        duplicate = StoreOutcome(status.SUCCESS, study_instance_uid=header.study_instance_uid)
        deadline = time.monotonic() + FIRST_COPY_ROW_WAIT_S
        while time.monotonic() < deadline:
            if instance_exists(conn, req.sop_instance_uid):
                log.info("duplicate kept first (placed by another association) sop=%s", req.sop_instance_uid)
                return duplicate
            conn.rollback()
            time.sleep(0.01)
        why = adopt(self.storage, self.catalog, path, req.called_ae)
        if why is None or instance_exists(conn, req.sop_instance_uid):
            log.warning("file without a catalog row indexed, kept first sop=%s", req.sop_instance_uid)
            return duplicate
        self.storage.quarantine(path)  # unusable: out of the way of the sender's retry
        return _refuse(req, status.OUT_OF_RESOURCES, f"a file without a catalog row was in the way ({why}); retry")


def _refuse(req: StoreRequest, code: int, comment: str) -> StoreOutcome:
    sop = req.sop_instance_uid if is_valid_uid(req.sop_instance_uid) else "<invalid>"
    log.warning(
        "refused C-STORE status=0x%04X sop=%s from=%s@%s: %s",
        code,
        sop,
        req.calling_ae,
        req.peer_address,
        comment,
    )
    return StoreOutcome(code, comment)
