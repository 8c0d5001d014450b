"""What an AI result does to the worklist: flags on the study's item (its rank moves) and webhook rows armed,
in the transaction that stores the result."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from dicomnode.catalog.schema import WorkItem
from dicomnode.config.settings import Settings
from dicomnode.export import webhook as notify
from dicomnode.worklist import items

DEFAULT_URGENCY = 1.0  # a model without a manifest: a reported finding counts as fully urgent


def record_result(
    conn: Connection,
    study_pk: int,
    result_uid: str,
    model: str,
    model_version: str,
    findings: list[dict[str, Any]],
    urgency: dict[str, float],
    settings: Settings,
) -> list[dict]:
    """`findings`: the result's records (label, code, probability); `urgency`: the manifest's, per label.
    Returns the flags it set."""
    flags = [
        {
            "label": f["label"],
            "code": f.get("code"),
            "probability": float(f["probability"]),
            "urgency": urgency.get(f["label"], DEFAULT_URGENCY),
            "model": model,
            "model_version": model_version,
            "result_uid": result_uid,
            "finding_index": index,  # its place in the result's findings: the key image's address
        }
        for index, f in enumerate(findings)
    ]
    item_id = items.record_ai(conn, study_pk, flags, model, model_version, settings.worklist)
    uid = conn.execute(select(WorkItem.__table__.c.workitem_uid).where(WorkItem.__table__.c.id == item_id)).scalar_one()
    notify.enqueue(conn, study_pk, uid, flags, settings.notify)
    return flags
