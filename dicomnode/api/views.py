"""How worklist rows look to clients: plain JSON for the REST API and the page, DICOM JSON for UPS-RS."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydicom import Dataset

from dicomnode.catalog.schema import WorkItemState
from dicomnode.config import ScoringPolicy
from dicomnode.priority import UPS_PRIORITY, PriorityClass
from dicomnode.worklist import items, scoring

UPS_PUSH_SOP_CLASS = "1.2.840.10008.5.1.4.34.6.1"


def item_json(row: Any, now: datetime, policy: ScoringPolicy) -> dict[str, Any]:
    assessed = scoring.assess(items.as_scored(row), now, policy)
    is_open = row.state in WorkItemState.OPEN
    return {
        "uid": row.workitem_uid,
        "rank": row.rank,
        "state": row.state,
        "priority": row.priority,
        "order_priority": row.requested_procedure_priority,
        "arrived_at": _iso(row.arrived_at),
        "waiting_minutes": round((now - row.arrived_at).total_seconds() / 60, 1),
        "modalities": row.modalities,
        "description": row.study_description or "",
        "study_instance_uid": row.study_instance_uid,
        "accession_number": row.accession_number or "",
        "patient_name": str(row.patient_name or ""),
        "patient_id": row.patient_id or "",
        "flagged": row.ai_urgency > 0,
        "flags": row.flags,
        "explanation": assessed.explanation if is_open else f"{row.state} by {row.claimed_by}",
        "score": round(assessed.score, 2) if is_open else None,
        "overdue_minutes": round(assessed.overdue_minutes, 1),
        "claimed_by": row.claimed_by,
        "claimed_at": _iso(row.claimed_at),
        "closed_at": _iso(row.closed_at),
    }


def event_json(row: Any) -> dict[str, Any]:
    return {"at": _iso(row.at), "event": row.event, "old_rank": row.old_rank, "new_rank": row.new_rank,
            "reason": row.reason, "by": row.actor}  # fmt: skip


def ups_dataset(row: Any, now: datetime, policy: ScoringPolicy) -> dict[str, Any]:
    """The item as a UPS (PS3.4 CC.2.5) in DICOM JSON. The Transaction UID is never returned (PS3.4 CC.2.5.1.3)."""
    ds = Dataset()
    ds.SOPClassUID = UPS_PUSH_SOP_CLASS
    ds.SOPInstanceUID = row.workitem_uid
    ds.ScheduledProcedureStepPriority = UPS_PRIORITY[PriorityClass[row.priority]]
    ds.ProcedureStepState = row.state
    ds.ProcedureStepLabel = (row.study_description or "Read study")[:64]
    ds.WorklistLabel = "dicomnode reading worklist"
    ds.ScheduledProcedureStepStartDateTime = _dt(row.arrived_at)
    ds.ScheduledProcedureStepModificationDateTime = _dt(row.updated_at)
    ds.CommentsOnTheScheduledProcedureStep = scoring.assess(items.as_scored(row), now, policy).explanation[:10240]
    ds.PatientName = row.patient_name or ""
    ds.PatientID = row.patient_id or ""
    ds.StudyInstanceUID = row.study_instance_uid
    request = Dataset()
    request.StudyInstanceUID = row.study_instance_uid
    request.AccessionNumber = row.accession_number or ""
    request.RequestedProcedureID = ""
    request.RequestedProcedureDescription = (row.study_description or "")[:64]
    ds.ReferencedRequestSequence = [request]
    return ds.to_json_dict()


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def _dt(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%S") + "+0000"
