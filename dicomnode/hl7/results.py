"""What the node tells the RIS in HL7 v2.5.1: an ORU^R01 per AI result (and per failed or out-of-scope analysis),
and an ORM^O01 order change that raises the order's priority, built with hl7apy against the standard's
structures.

The ORU carries the order's identifiers (ORC-2/3, OBR-2/3, OBR-18 accession), the AI status as its first OBX
(flagged, negative, failed, out_of_scope: the words of worklist/ai_status.py), then per finding a coded OBX
(the finding's code), its calibrated probability, its urgency and its measurements with UCUM units, all of one
finding under one OBX-4 sub-ID; and an NTE that says the output is not for diagnostic use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hl7apy.core import Group, Message

from dicomnode.hl7.messages import NOT_FOR_DIAGNOSIS, escape, new_message, timestamp
from dicomnode.routing.priority import HL7_CODE, PriorityClass
from models.findings import UNITS

LOCAL = "99DCMNODE"  # HL7 local coding system for our own observation identifiers


@dataclass(frozen=True)
class ReportContext:
    """Who and what a message is about: the study, its patient and its order (as the RIS sent it, if it did)."""

    study_instance_uid: str
    accession_number: str
    patient_id: str
    patient_name: str
    placer_order_number: str
    filler_order_number: str
    procedure_code: str
    procedure_text: str
    application: str
    facility: str


@dataclass(frozen=True)
class AIReport:
    model: str
    model_version: str
    status: str  # flagged, negative, failed, out_of_scope
    findings: list[dict[str, Any]]  # result records (models/findings.py to_json) with "urgency" added
    reason: str = ""  # why it failed or was out of scope


def oru(context: ReportContext, report: AIReport, control_id: str) -> str:
    """ORU^R01 (v2.5.1) with the AI result of one model for one study."""
    message = new_message("ORU_R01", "ORU^R01^ORU_R01", control_id, context.application, context.facility)
    result = message.add_group("ORU_R01_PATIENT_RESULT")
    _patient(result.add_group("ORU_R01_PATIENT"), context)
    order = result.add_group("ORU_R01_ORDER_OBSERVATION")
    _order_segments(order, context, "RE")
    order.obr.obr_25 = "F"  # final: this model version's last word on the study
    order.add_segment("NTE").nte_3 = escape(NOT_FOR_DIAGNOSIS)
    for set_id, (sub_id, value_type, identifier, value, units) in enumerate(_observations(context, report), 1):
        obx = order.add_group("ORU_R01_OBSERVATION").obx
        obx.obx_1 = str(set_id)
        obx.obx_2 = value_type
        obx.obx_3 = identifier
        if sub_id:
            obx.obx_4 = sub_id
        obx.obx_5 = value
        if units:
            obx.obx_6 = units
        obx.obx_11 = "F"
        obx.obx_14 = timestamp()
    return message.to_er7()


def priority_change(context: ReportContext, priority: PriorityClass, reason: str, control_id: str) -> str:
    """ORM^O01 with ORC-1 XO (change order): the order's priority raised, e.g. to STAT for a critical finding."""
    message = new_message("ORM_O01", "ORM^O01^ORM_O01", control_id, context.application, context.facility)
    _patient(message.add_group("ORM_O01_PATIENT"), context)
    order = message.add_group("ORM_O01_ORDER")
    code = HL7_CODE[priority]
    detail = order.add_group("ORM_O01_ORDER_DETAIL")
    _order_segments(order, context, "XO", detail)
    order.orc.orc_7 = f"^^^^^{code}"
    order.orc.orc_16 = f"AIPRIORITY^{escape(reason[:190])}^{LOCAL}"
    obr = detail.orm_o01_obrrqdrq1rxoodsodt_suppgrp.obr
    obr.obr_5 = code  # Priority-OBR (retained for backward compatibility)
    obr.obr_27 = f"^^^^^{code}"
    detail.add_segment("NTE").nte_3 = escape(NOT_FOR_DIAGNOSIS)
    return message.to_er7()


def _patient(group: Group, context: ReportContext) -> None:
    group.pid.pid_3 = escape(context.patient_id or "UNKNOWN")  # both required in v2.5.1
    group.pid.pid_5 = "^".join(escape(p) for p in (context.patient_name or "UNKNOWN").split("^")[:5])


def _order_segments(group: Group | Message, context: ReportContext, control: str, detail: Group | None = None) -> None:
    group.orc.orc_1 = control
    if context.placer_order_number:
        group.orc.orc_2 = escape(context.placer_order_number)
    if context.filler_order_number:
        group.orc.orc_3 = escape(context.filler_order_number)
    obr = detail.orm_o01_obrrqdrq1rxoodsodt_suppgrp.obr if detail is not None else group.obr
    obr.obr_1 = "1"
    if context.placer_order_number:
        obr.obr_2 = escape(context.placer_order_number)
    if context.filler_order_number:
        obr.obr_3 = escape(context.filler_order_number)
    procedure = context.procedure_code or "AITRIAGE"
    text = context.procedure_text or "AI triage"
    obr.obr_4 = f"{escape(procedure)}^{escape(text)}^{'L' if context.procedure_code else LOCAL}"
    obr.obr_7 = timestamp()
    if context.accession_number:
        obr.obr_18 = escape(context.accession_number)
    obr.obr_22 = timestamp()


def _observations(context: ReportContext, report: AIReport) -> list[tuple[str, str, str, str, str]]:
    """(sub-ID, value type, OBX-3, OBX-5, OBX-6) for every OBX, in order."""
    status = f"{report.status}^{_STATUS_TEXT[report.status]}^{LOCAL}"
    rows = [
        ("", "CWE", f"AISTATUS^AI analysis status^{LOCAL}", status, ""),
        ("", "ST", f"AIMODEL^AI model and version^{LOCAL}", escape(f"{report.model} {report.model_version}"), ""),
        ("", "ST", f"STUDYUID^Study Instance UID^{LOCAL}", context.study_instance_uid, ""),
    ]
    if report.reason:
        rows.append(("", "ST", f"AIREASON^Why the AI gave no result^{LOCAL}", escape(report.reason[:200]), ""))
    for index, finding in enumerate(report.findings, 1):
        sub = str(index)
        code = finding["code"]
        coded = f"{escape(code['value'])}^{escape(code['meaning'])}^{_scheme(code['scheme'])}"
        rows.append((sub, "CWE", f"AIFINDING^AI finding^{LOCAL}", coded, ""))
        probability = f"{float(finding['probability']):.3f}"
        rows.append((sub, "NM", f"AIPROB^Calibrated probability^{LOCAL}", probability, "1^unity^UCUM"))
        rows.append((sub, "NM", f"AIURGENCY^Urgency of the finding^{LOCAL}", f"{finding['urgency']:.2f}", ""))
        for m in finding.get("measurements", []):
            name = escape(m["name"])[:60]
            identifier = f"AIMEAS^{name}^{LOCAL}"
            unit = f"{m['unit']}^{UNITS[m['unit']]}^UCUM"
            rows.append((sub, "NM", identifier, f"{float(m['value']):.1f}", unit))
    return rows


_STATUS_TEXT = {
    "flagged": "Finding flagged by AI",
    "negative": "AI analysed the study and found nothing",
    "failed": "AI analysis failed: no result",
    "out_of_scope": "Study out of the model's scope: not analysed",
}


def _scheme(dicom_scheme: str) -> str:
    """DICOM coding scheme designator as HL7 table 0396 names it (SNOMED CT is SCT in both)."""
    return {"SRT": "SCT", "DCM": "DCM", "LN": "LN"}.get(dicom_scheme, escape(dicom_scheme))
