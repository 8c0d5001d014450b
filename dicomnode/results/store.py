"""Result instances become part of their study: written to storage and indexed, without reopening the study
(a study that reopened for its own results would be analysed again)."""

from __future__ import annotations

import io
from typing import NamedTuple

from pydicom import Dataset
from pydicom.uid import (
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
)
from sqlalchemy import Connection

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.records import record_derived_instance
from dicomnode.config.export import ResultKind
from dicomnode.receive.storage import Storage


class StoredInstance(NamedTuple):
    sop_instance_uid: str
    path: str  # relative to the storage root
    kind: ResultKind


_KINDS = {
    SegmentationStorage: ResultKind.SEG,
    SecondaryCaptureImageStorage: ResultKind.SC,
    GrayscaleSoftcopyPresentationStateStorage: ResultKind.GSPS,
    KeyObjectSelectionDocumentStorage: ResultKind.KOS,
}


def kind_of(ds: Dataset) -> ResultKind:
    return kind_of_class(str(ds.SOPClassUID))


def kind_of_class(sop_class_uid: str) -> ResultKind:
    """The result kind of an instance we made, by its SOP class (every SR class is an SR)."""
    return _KINDS.get(sop_class_uid, ResultKind.SR)


def store_instances(
    conn: Connection, storage: Storage, study_pk: int, producer: str, datasets: list[Dataset]
) -> list[StoredInstance]:
    """Write each data set durably and index it in the catalog; what and where each one is.
    The files are durable before the caller commits; a rollback leaves files the next run overwrites."""
    stored = []
    for ds in datasets:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        path = storage.relative_path(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
        size = storage.write_durably(path, [buffer.getvalue()])
        record_derived_instance(
            conn,
            study_pk,
            series={
                "series_instance_uid": ds.SeriesInstanceUID,
                "modality": ds.Modality,
                "series_description": ds.get("SeriesDescription"),
                "series_number": str(ds.SeriesNumber),
            },
            instance={
                "sop_instance_uid": ds.SOPInstanceUID,
                "sop_class_uid": ds.SOPClassUID,
                "transfer_syntax_uid": ds.file_meta.TransferSyntaxUID,
                "instance_number": str(ds.InstanceNumber),
                "path": path,
                "size_bytes": size,
                "calling_ae": producer[:16],
                "called_ae": producer[:16],
                "peer_address": "local",
                "received_at": utcnow(),
            },
        )
        stored.append(StoredInstance(str(ds.SOPInstanceUID), path, kind_of(ds)))
    return stored
