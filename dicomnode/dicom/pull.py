"""The Query/Retrieve SCU: pull a study from a PACS so that the node analyses it like a pushed one.

C-FIND (Study Root, STUDY level) resolves an accession number to study UIDs; C-MOVE asks the PACS to send each
study to the node's own AE title (the PACS must know the node as a DICOM modality). The instances then arrive on
the node's listener and are assembled, routed and analysed as every other study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelMove,
)

from dicomnode.dicom import status
from dicomnode.dicom.scu import Destination, associate, client_ae
from dicomnode.errors import DicomnodeError

log = logging.getLogger(__name__)


class RetrieveFailed(DicomnodeError, RuntimeError):
    """The PACS refused the query or the move, or sent nothing."""


@dataclass(frozen=True)
class Pulled:
    study_instance_uid: str
    completed: int
    failed: int
    warning: int


def find_studies(source: Destination, calling_ae: str, accession: str, timeout_s: float = 30) -> list[str]:
    """The Study Instance UIDs the PACS holds under that accession number."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.AccessionNumber = accession
    identifier.StudyInstanceUID = ""
    ae = client_ae(calling_ae, timeout_s)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
    assoc = associate(ae, source)
    found: list[str] = []
    try:
        for answer, match in assoc.send_c_find(identifier, StudyRootQueryRetrieveInformationModelFind):
            code = int(answer.get("Status", -1)) if answer else None
            if code in (status.PENDING, 0xFF01) and match is not None:
                found.append(str(match.get("StudyInstanceUID", "")))
            elif code != status.SUCCESS:
                raise RetrieveFailed(f"{source}: C-FIND answered {status.hex_code(code)}")
    finally:
        assoc.release()
    return [uid for uid in dict.fromkeys(found) if uid]


def move_study(source: Destination, calling_ae: str, study_uid: str, move_to: str, timeout_s: float = 600) -> Pulled:
    """C-MOVE one study from `source` to the AE title `move_to` (the node itself); counts from the final answer."""
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.StudyInstanceUID = study_uid
    ae = client_ae(calling_ae, timeout_s)
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelMove)
    assoc = associate(ae, source)
    final: Dataset | None = None
    try:
        for answer, _ in assoc.send_c_move(identifier, move_to, StudyRootQueryRetrieveInformationModelMove):
            if answer and int(answer.get("Status", -1)) not in (status.PENDING, 0xFF01):
                final = answer
    finally:
        assoc.release()
    if final is None:
        raise RetrieveFailed(f"{source}: no answer to the C-MOVE")
    code = int(final.Status)
    pulled = Pulled(
        study_uid,
        int(final.get("NumberOfCompletedSuboperations", 0) or 0),
        int(final.get("NumberOfFailedSuboperations", 0) or 0),
        int(final.get("NumberOfWarningSuboperations", 0) or 0),
    )
    if code not in (status.SUCCESS, status.SUB_OPERATIONS_WITH_FAILURES):
        raise RetrieveFailed(f"{source}: C-MOVE answered {status.hex_code(code)}")
    return pulled


def retrieve(
    source: Destination, calling_ae: str, accession: str | None, study_uid: str | None, move_to: str
) -> list[Pulled]:
    """Pull every study of the accession (or the one study) to `move_to`; RetrieveFailed when none was found."""
    uids = [study_uid] if study_uid else find_studies(source, calling_ae, accession or "")
    if not uids:
        raise RetrieveFailed(f"{source}: no study with that accession number")
    pulled = [move_study(source, calling_ae, uid, move_to) for uid in uids]
    log.info("retrieved from %s: %d studies, %d instances", source, len(pulled), sum(p.completed for p in pulled))
    return pulled
