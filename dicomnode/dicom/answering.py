"""Every C-STORE gets an answer, even one pynetdicom would drop before our handler.

pynetdicom turns a request whose command set lacks a required value (an empty or blank Affected
SOP Instance UID, no Priority) into a primitive that its service layer ignores with a log line,
and aborts the association for a UID its validator refuses (65+ characters). The sender then
waits its whole DIMSE timeout. Here, pynetdicom's UI validator accepts any value (Ingest checks
every UID against the DICOM grammar itself and answers 0xC001), and the queue between its DIMSE
decoder and its service layer answers the requests it would drop.
"""

from __future__ import annotations

import logging
import queue
from typing import Any

from pynetdicom import _config
from pynetdicom.dimse_primitives import C_STORE

from dicomnode.dicom import status
from dicomnode.ops.metrics import NodeMetrics

log = logging.getLogger(__name__)

_UID_KEYWORDS = {
    "AffectedSOPClassUID": "Affected SOP Class UID",
    "AffectedSOPInstanceUID": "Affected SOP Instance UID",
}


def accept_any_uid(value: str) -> tuple[bool, str]:
    return True, ""


def install_lenient_uid_validator() -> None:
    """Let pynetdicom carry any UID value to our handler, which refuses bad ones with a status."""
    _config.VALIDATORS["UI"] = accept_any_uid


class AnsweringQueue(queue.Queue):
    """pynetdicom's DIMSE message queue, answering on the spot the C-STORE requests its service layer drops."""

    def __init__(self, assoc: Any, metrics: NodeMetrics) -> None:
        super().__init__()
        self._assoc = assoc
        self._metrics = metrics

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        context_id, primitive = item
        refusal = unusable_store_request(primitive)
        if refusal is None:
            super().put(item, block, timeout)
            return
        receiving = getattr(primitive, "incoming", None)  # a data set streamed to storage (dicom.fastpath)
        if receiving is not None:
            receiving.discard()
        self._answer(context_id, primitive, *refusal)

    def _answer(self, context_id: int, request: C_STORE, code: int, comment: str) -> None:
        rsp = C_STORE()
        rsp.MessageIDBeingRespondedTo = request.MessageID if request.MessageID is not None else 0
        rsp.AffectedSOPClassUID = request.AffectedSOPClassUID
        rsp.AffectedSOPInstanceUID = request.AffectedSOPInstanceUID
        rsp.Status = code
        rsp.ErrorComment = comment[:64]
        self._assoc.dimse.send_msg(rsp, context_id)
        self._metrics.refused.labels(status.hex_code(code)).inc()
        rq = self._assoc.requestor
        log.warning(
            "refused C-STORE status=0x%04X sop=<invalid> from=%s@%s: %s",
            code,
            rq.primitive.calling_ae_title.strip() if rq.primitive else "?",
            rq.address,
            comment,
        )


def unusable_store_request(primitive: Any) -> tuple[int, str] | None:
    """(status, comment) for a C-STORE request pynetdicom's service layer would not pass on; None otherwise."""
    if not isinstance(primitive, C_STORE) or primitive.MessageIDBeingRespondedTo is not None:
        return None
    if primitive.is_valid_request:
        return None
    for keyword, name in _UID_KEYWORDS.items():
        if getattr(primitive, keyword) is None:
            return status.INVALID_UID, f"{name} is empty"
    missing = [k for k in C_STORE.REQUEST_KEYWORDS if getattr(primitive, k) is None]
    return status.CANNOT_UNDERSTAND, f"C-STORE request lacks {', '.join(missing)}"
