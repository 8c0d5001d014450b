"""POST /api/retrieve: a reader asks for AI on a study that was never pushed; the node pulls it from a PACS
(C-FIND by accession, C-MOVE to itself) and it is then analysed like any pushed study."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field, model_validator

from dicomnode.api.auth import reader
from dicomnode.dicom.pull import RetrieveFailed, retrieve
from dicomnode.dicom.scu import AssociationFailed, Destination

log = logging.getLogger(__name__)
router = APIRouter()
Reader = Annotated[str, Depends(reader)]


class RetrieveRequest(BaseModel):
    source: str = Field(description="The PACS to pull from: AE@HOST:PORT (tls:AE@HOST:PORT over TLS)")
    accession_number: str | None = Field(None, max_length=16)
    study_instance_uid: str | None = Field(None, max_length=64)

    @model_validator(mode="after")
    def _one_key(self) -> RetrieveRequest:
        if bool(self.accession_number) == bool(self.study_instance_uid):
            raise ValueError("give accession_number or study_instance_uid, not both")
        Destination.parse(self.source)
        return self


@router.post("/api/retrieve")
def pull(request: Request, body: RetrieveRequest, who: Reader) -> dict[str, Any]:
    """Pull the study from the PACS to this node; answers once the PACS has sent it (502 when it refused)."""
    ae_title = request.app.state.settings.dicom.ae_title
    source = Destination.parse(body.source, request.app.state.settings.export.tls_context())
    try:
        pulled = retrieve(source, ae_title, body.accession_number, body.study_instance_uid, ae_title)
    except (RetrieveFailed, AssociationFailed) as exc:
        raise HTTPException(502, str(exc)) from None
    log.info("retrieve by %s from %s: %d studies", who, source, len(pulled))
    return {
        "studies": [
            {"study_instance_uid": p.study_instance_uid, "completed": p.completed, "failed": p.failed} for p in pulled
        ]
    }
