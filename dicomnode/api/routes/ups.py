"""UPS-RS (DICOMweb, PS3.18 11) over the worklist items: search, retrieve, change state.

Matching keys: ScheduledProcedureStepPriority (0074,1200) HIGH | MEDIUM | LOW, ProcedureStepState
(0074,1000), AccessionNumber (0008,0050, also as ReferencedRequestSequence.AccessionNumber), and Modality
(0008,0060, our extension: UPS has no modality of its own). Results come in reading order. Without a
ProcedureStepState key the search returns open workitems (SCHEDULED, IN PROGRESS) only.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydicom import Dataset
from pydicom.datadict import dictionary_has_tag, tag_for_keyword

from dicomnode.api.auth import reader
from dicomnode.api.listing import MAX_LIMIT, MAX_OFFSET, find, one
from dicomnode.api.serializers import ups_dataset
from dicomnode.catalog.db import utcnow
from dicomnode.catalog.states import OPEN_WORKITEM, WorkItemState
from dicomnode.routing.priority import UPS_PRIORITY
from dicomnode.worklist import items, order

router = APIRouter()
Reader = Annotated[str, Depends(reader)]
DICOM_JSON = "application/dicom+json"
_KEYS = {
    "ScheduledProcedureStepPriority": "priority",
    "00741200": "priority",
    "ProcedureStepState": "state",
    "00741000": "state",
    "AccessionNumber": "accession",
    "00080050": "accession",
    "ReferencedRequestSequence.AccessionNumber": "accession",
    "0040A370.00080050": "accession",
    "Modality": "modality",
    "00080060": "modality",
}
_ALL_STATES = (*OPEN_WORKITEM, WorkItemState.COMPLETED, WorkItemState.CANCELED)


@router.get("/workitems")
def search(request: Request, _reader: Reader) -> Response:
    params = request.query_params
    limit = _int(params.get("limit", "100"), "limit", 1, MAX_LIMIT)
    offset = _int(params.get("offset", "0"), "offset", 0, MAX_OFFSET)
    for field in params.getlist("includefield"):
        for name in field.split(","):
            if name != "all" and not _known_attribute(name.strip()):
                raise HTTPException(400, f"includefield: unknown attribute {name}")
    warnings = []
    match: dict[str, str] = {}
    for key, value in params.items():
        if key in ("limit", "offset", "includefield", "fuzzymatching"):
            continue
        if key not in _KEYS:
            warnings.append(f'299 dicomnode "matching key {key} is not supported and was ignored"')
            continue
        match[_KEYS[key]] = value
    filters = order.Filters(
        states=_states(match.get("state")),
        modality=match.get("modality"),
        accession_number=match.get("accession"),
        priorities=_priorities(match.get("priority")),
    )
    settings = request.app.state.settings
    now = utcnow()
    rows, _ = find(request.app, "urgency", filters, limit, offset, now)
    headers = {"Warning": ", ".join(warnings)} if warnings else {}
    if not rows:
        return Response(status_code=204, headers=headers)
    body = [ups_dataset(r, now, settings.worklist) for r in rows]
    return JSONResponse(body, media_type=DICOM_JSON, headers=headers)


@router.get("/workitems/{uid}")
def retrieve(uid: str, request: Request, _reader: Reader) -> Response:
    now = utcnow()
    row = one(request.app, uid, now)
    return JSONResponse([ups_dataset(row, now, request.app.state.settings.worklist)], media_type=DICOM_JSON)


@router.put("/workitems/{uid}/state")
async def change_state(uid: str, request: Request, who: Reader) -> Response:
    """SCHEDULED -> IN PROGRESS with the client's Transaction UID; IN PROGRESS -> COMPLETED or CANCELED with the
    same Transaction UID. A second claimer gets 409; a wrong or missing Transaction UID 400."""
    wanted, transaction_uid = _state_request(await request.body())
    config = request.app.state.settings.worklist
    try:
        with request.app.state.catalog.begin() as conn:
            if wanted == WorkItemState.IN_PROGRESS:
                items.claim(conn, uid, who, transaction_uid, config)
            elif wanted in (WorkItemState.COMPLETED, WorkItemState.CANCELED):
                items.close(conn, uid, None, transaction_uid, wanted, config)
            else:
                raise HTTPException(400, f"a workitem cannot be changed to {wanted}")
    except items.NotTheClaimer as exc:
        raise HTTPException(400, str(exc)) from None
    request.app.state.watcher.check()
    return Response(status_code=200)


def _state_request(body: bytes) -> tuple[str, str]:
    try:
        data = json.loads(body or b"null")
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        ds = Dataset.from_json(data)
        wanted = str(ds.ProcedureStepState).strip()
        transaction_uid = str(ds.get("TransactionUID", "")).strip()
    except Exception:
        raise HTTPException(
            400,
            "the body must be a DICOM JSON dataset with ProcedureStepState (00741000) and TransactionUID (00081195)",
        ) from None
    if not transaction_uid:
        raise HTTPException(400, "TransactionUID (00081195) is required")
    return wanted, transaction_uid


def _states(value: str | None) -> tuple[str, ...]:
    if value is None:  # the work still to do; closed workitems are asked for by state
        return OPEN_WORKITEM
    if value not in _ALL_STATES:
        raise HTTPException(400, f"ProcedureStepState must be one of {', '.join(_ALL_STATES)}")
    return (value,)


def _priorities(value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    classes = tuple(cls.name for cls, ups in UPS_PRIORITY.items() if ups == value)
    if not classes:
        raise HTTPException(400, "ScheduledProcedureStepPriority must be HIGH, MEDIUM or LOW")
    return classes


def _int(value: str, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise HTTPException(400, f"{name} must be an integer") from None
    if not low <= number <= high:
        raise HTTPException(400, f"{name} must be between {low} and {high}")
    return number


def _known_attribute(path: str) -> bool:
    """A keyword or tag, or a dotted path of them (a sequence's item attribute)."""
    for name in path.split("."):
        if tag_for_keyword(name) is not None:
            continue
        try:
            if not dictionary_has_tag(int(name, 16)):
                return False
        except ValueError:
            return False
    return True
