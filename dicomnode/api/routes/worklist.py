"""The web worklist page and its REST API: list (filters, search), live events, one item with its AI status and
history, key images, reader feedback, claim, release, complete and its undo."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from dicomnode.api.auth import reader
from dicomnode.api.listing import MAX_LIMIT, MAX_OFFSET, find, one
from dicomnode.api.serializers import event_json, item_json, model_status_json
from dicomnode.catalog.db import utcnow
from dicomnode.catalog.states import OPEN_WORKITEM, WorkItemState
from dicomnode.config.worklist import WorklistConfig
from dicomnode.worklist import ai_status, feedback, items, key_images, order
from dicomnode.worklist.ai_status import AIStatus
from dicomnode.worklist.feedback import Verdict

log = logging.getLogger(__name__)
router = APIRouter()
Reader = Annotated[str, Depends(reader)]
STATES = {
    "open": OPEN_WORKITEM,
    "scheduled": (WorkItemState.SCHEDULED,),
    "in-progress": (WorkItemState.IN_PROGRESS,),
    "completed": (WorkItemState.COMPLETED,),
    "canceled": (WorkItemState.CANCELED,),
}
_PAGE = files("dicomnode.api").joinpath("worklist.html")


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def worklist_page() -> str:
    return _PAGE.read_text()  # holds no data: the page asks for a token and calls the API


@router.get("/api/me")
def me(who: Reader) -> dict[str, str]:
    """Who the token belongs to (the page uses it to know which claims are the reader's own)."""
    return {"reader": who}


@router.get("/api/worklist")
def list_items(
    request: Request,
    _reader: Reader,
    order_by: Annotated[Literal["urgency", "arrival"], Query(alias="order")] = "urgency",
    state: Literal["open", "scheduled", "in-progress", "completed", "canceled"] = "open",
    modality: str | None = None,
    flagged: bool | None = None,
    ai_status: AIStatus | None = None,
    q: Annotated[str | None, Query(max_length=64, description="Patient name or ID, accession, or study date")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """Open items in reading order (rank 1 first); filter by state, modality, AI flag and AI status."""
    now = utcnow()
    filters = order.Filters(
        modality=modality, states=STATES[state], flagged=flagged, ai_status=ai_status, search=(q or "").strip() or None
    )
    rows, total = find(request.app, order_by, filters, limit, offset, now)
    with request.app.state.catalog.connect() as conn:
        opinions = feedback.by_item(conn, [r.id for r in rows])
    config = request.app.state.settings.worklist
    return {
        "order": order_by,
        "total": total,
        "version": request.app.state.watcher.version,
        "generated_at": now.isoformat(timespec="seconds") + "Z",
        "items": [{**item_json(r, now, config), "feedback": opinions[r.id]} for r in rows],
    }


@router.get("/api/worklist/events")
async def events(request: Request, _reader: Reader) -> StreamingResponse:
    """Server-sent events: `changed` with the new version whenever the worklist changed."""
    watcher = request.app.state.watcher

    async def stream():  # noqa: ANN202
        seen = -1
        idle = 0.0
        while not await request.is_disconnected():
            if watcher.version != seen:
                seen = watcher.version
                idle = 0.0
                yield f"event: changed\ndata: {json.dumps({'version': seen})}\n\n"
            elif idle >= 15:
                idle = 0.0
                yield ": keep-alive\n\n"
            await asyncio.sleep(0.05)
            idle += 0.05

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


@router.get("/api/worklist/{uid}")
def get_item(uid: str, request: Request, _reader: Reader) -> dict[str, Any]:
    """One item, open or closed, with each model's AI status and its history of rank and state changes."""
    now = utcnow()
    row = one(request.app, uid, now)
    with request.app.state.catalog.connect() as conn:
        history = items.history(conn, row.id)
        models = ai_status.per_model(conn, row.study_fk)
        opinions = feedback.by_item(conn, [row.id])[row.id]
    return {
        **item_json(row, now, request.app.state.settings.worklist),
        "ai": [model_status_json(m) for m in models],
        "feedback": opinions,
        "history": [event_json(e) for e in history],
    }


@router.get("/api/worklist/{uid}/key-image/{result_uid}/{index}.png", response_class=Response)
def key_image(uid: str, result_uid: str, index: int, request: Request, _reader: Reader) -> Response:
    """A flagged finding's key image: its centre slice, windowed, the finding boxed, "not for diagnostic use"."""
    now = utcnow()
    row = one(request.app, uid, now)
    root = request.app.state.settings.storage.path.resolve()
    with request.app.state.catalog.connect() as conn:
        image = key_images.key_image_png(conn, root, row.study_fk, result_uid, index)
    return Response(image, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


class FeedbackIn(BaseModel):
    """A reader's assessment of one AI flag of the item."""

    result_uid: str = Field(max_length=64)
    label: str = Field(max_length=64)
    verdict: Verdict
    comment: str | None = Field(None, max_length=feedback.MAX_COMMENT)


@router.post("/api/worklist/{uid}/feedback")
def give_feedback(uid: str, body: FeedbackIn, request: Request, who: Reader) -> dict[str, Any]:
    """Agree, disagree or unsure about one AI flag; recorded in the history and audit trail, never moves the rank."""
    assessment = feedback.Assessment(body.result_uid, body.label, body.verdict, body.comment)
    return _change(
        request,
        uid,
        who,
        f"given feedback ({body.verdict})",
        lambda c, cfg: feedback.record(c, uid, who, assessment, cfg),
    )


def _change(
    request: Request, uid: str, who: str, done: str, change: Callable[[Connection, WorklistConfig], Any]
) -> Any:
    """One state change of an item: committed, shown at once (the reader's next list need not wait for the
    watcher's poll), logged."""
    with request.app.state.catalog.begin() as conn:
        outcome = change(conn, request.app.state.settings.worklist)
    request.app.state.watcher.check()
    log.info("worklist item %s %s by %s", uid, done, who)
    return outcome


@router.post("/api/worklist/{uid}/claim")
def claim(uid: str, request: Request, who: Reader) -> dict[str, Any]:
    transaction_uid = _change(request, uid, who, "claimed", lambda c, cfg: items.claim(c, uid, who, None, cfg))
    return {"uid": uid, "state": WorkItemState.IN_PROGRESS, "claimed_by": who, "transaction_uid": transaction_uid}


@router.post("/api/worklist/{uid}/release")
def release(uid: str, request: Request, who: Reader) -> dict[str, Any]:
    _change(request, uid, who, "released", lambda c, cfg: items.release(c, uid, who, None, cfg))
    return {"uid": uid, "state": WorkItemState.SCHEDULED}


@router.post("/api/worklist/{uid}/reopen")
def reopen(uid: str, request: Request, who: Reader) -> dict[str, Any]:
    """Undo a completion: only its reader, only within a minute."""
    _change(request, uid, who, "reopened", lambda c, cfg: items.reopen(c, uid, who, cfg))
    return {"uid": uid, "state": WorkItemState.IN_PROGRESS}


@router.post("/api/worklist/{uid}/complete")
def complete(uid: str, request: Request, who: Reader) -> dict[str, Any]:
    _change(request, uid, who, "completed", lambda c, cfg: items.close(c, uid, who, None, WorkItemState.COMPLETED, cfg))
    return {"uid": uid, "state": WorkItemState.COMPLETED}
