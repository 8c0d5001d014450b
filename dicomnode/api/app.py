"""The FastAPI application: the web worklist page, its REST API with live events, and UPS-RS (PS3.18 11)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from sqlalchemy import Engine

from dicomnode.api.auth import Readers, reader
from dicomnode.api.listing import find, one
from dicomnode.api.routes import ups
from dicomnode.api.serializers import event_json, item_json
from dicomnode.catalog.db import utcnow
from dicomnode.catalog.schema import WorkItemState
from dicomnode.config.settings import Settings
from dicomnode.worklist import items, order
from dicomnode.worklist.snapshot import RankedView
from dicomnode.worklist.watcher import WorklistWatcher

log = logging.getLogger(__name__)
Reader = Annotated[str, Depends(reader)]
STATES = {"open": WorkItemState.OPEN, "scheduled": (WorkItemState.SCHEDULED,),
          "in-progress": (WorkItemState.IN_PROGRESS,), "completed": (WorkItemState.COMPLETED,),
          "canceled": (WorkItemState.CANCELED,)}  # fmt: skip


@dataclass(frozen=True)
class Operations:
    """What /metrics and /healthz read: the node's metrics and its health checks."""

    metrics: CollectorRegistry
    health: Callable[[], dict[str, Any]]


def create_app(settings: Settings, catalog: Engine, watcher: WorklistWatcher,
               operations: Operations | None = None) -> FastAPI:  # fmt: skip
    app = FastAPI(title="dicomnode", version="1", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.readers = Readers(settings.http.tokens)
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.watcher = watcher
    app.state.view = RankedView(catalog, settings.worklist.scoring, watcher)
    page = files("dicomnode.api").joinpath("worklist.html").read_text()

    @app.exception_handler(items.WorklistError)
    def _worklist_error(_request: Request, exc: items.WorklistError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.http_status)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def worklist_page() -> str:
        return page  # holds no data: the page asks for a token and calls the API

    if operations is not None:

        @app.get("/healthz", include_in_schema=False)
        def healthz() -> JSONResponse:
            """No token needed (load balancers, orchestrators): the answer holds no patient data."""
            report = operations.health()
            return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)

        @app.get("/metrics", include_in_schema=False)
        def metrics() -> Response:
            """Prometheus text format; no token needed and no patient data in it."""
            return Response(generate_latest(operations.metrics), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/me")
    def me(who: Reader) -> dict[str, str]:
        """Who the token belongs to (the page uses it to know which claims are the reader's own)."""
        return {"reader": who}

    @app.get("/api/worklist")
    def list_items(
        _reader: Reader,
        order_by: Annotated[Literal["urgency", "arrival"], Query(alias="order")] = "urgency",
        state: Literal["open", "scheduled", "in-progress", "completed", "canceled"] = "open",
        modality: str | None = None,
        flagged: bool | None = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        offset: Annotated[int, Query(ge=0)] = 0,
    ) -> dict[str, Any]:
        """Open items in reading order (rank 1 first); filter by state, modality and AI flag."""
        now = utcnow()
        filters = order.Filters(modality=modality, states=STATES[state], flagged=flagged)
        rows, total = find(app, order_by, filters, limit, offset, now)
        return {
            "order": order_by,
            "total": total,
            "version": watcher.version,
            "generated_at": now.isoformat(timespec="seconds") + "Z",
            "items": [item_json(r, now, settings.worklist.scoring) for r in rows],
        }

    @app.get("/api/worklist/events")
    async def events(request: Request, _reader: Reader) -> StreamingResponse:
        """Server-sent events: `changed` with the new version whenever the worklist changed."""

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

    @app.get("/api/worklist/{uid}")
    def get_item(uid: str, _reader: Reader) -> dict[str, Any]:
        """One item, open or closed, with its history of rank and state changes."""
        now = utcnow()
        row = one(app, uid, now)
        with catalog.connect() as conn:
            history = items.history(conn, row.id)
        return {**item_json(row, now, settings.worklist.scoring), "history": [event_json(e) for e in history]}

    @app.post("/api/worklist/{uid}/claim")
    def claim(uid: str, who: Reader) -> dict[str, Any]:
        with catalog.begin() as conn:
            transaction_uid = items.claim(conn, uid, who, None, settings.worklist)
        watcher.check()  # the reader's next list shows the claim, without waiting for the watcher's poll
        log.info("worklist item %s claimed by %s", uid, who)
        return {"uid": uid, "state": WorkItemState.IN_PROGRESS, "claimed_by": who, "transaction_uid": transaction_uid}

    @app.post("/api/worklist/{uid}/release")
    def release(uid: str, who: Reader) -> dict[str, Any]:
        with catalog.begin() as conn:
            items.release(conn, uid, who, None, settings.worklist)
        watcher.check()
        log.info("worklist item %s released by %s", uid, who)
        return {"uid": uid, "state": WorkItemState.SCHEDULED}

    @app.post("/api/worklist/{uid}/complete")
    def complete(uid: str, who: Reader) -> dict[str, Any]:
        with catalog.begin() as conn:
            items.close(conn, uid, who, None, WorkItemState.COMPLETED, settings.worklist)
        watcher.check()
        log.info("worklist item %s completed by %s", uid, who)
        return {"uid": uid, "state": WorkItemState.COMPLETED}

    app.include_router(ups.router)
    return app
