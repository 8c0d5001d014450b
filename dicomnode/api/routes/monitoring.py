"""The model-monitoring page and its API: per model version the figures of dicomnode/ops/monitoring and the open
alerts, for any reader token (the figures hold no patient data)."""

from __future__ import annotations

from datetime import datetime
from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from dicomnode.api.auth import reader
from dicomnode.catalog.db import utcnow
from dicomnode.ops.monitoring.alerts import open_alerts
from dicomnode.ops.monitoring.figures import monitored

router = APIRouter()
Reader = Annotated[str, Depends(reader)]
_PAGE = files("dicomnode.api").joinpath("monitor.html")


@router.get("/monitor", response_class=HTMLResponse, include_in_schema=False)
def monitor_page() -> str:
    return _PAGE.read_text()  # holds no data: the page asks for a token and calls the API


@router.get("/api/monitoring")
def monitoring(
    request: Request,
    _reader: Reader,
    model: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[str | None, Query(max_length=32, description="Window start, ISO date or date-time UTC")] = None,
) -> dict[str, Any]:
    """Per model version: studies per day, positive rate and its baseline, score histogram, failed and
    out-of-scope rates, time to result, input drift (PSI per feature), readers' agreement; open alerts."""
    config = request.app.state.settings.monitoring
    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        raise HTTPException(422, "since must be an ISO date or date-time") from None
    with request.app.state.catalog.connect() as conn:
        versions = monitored(conn, config, utcnow(), model, start)
        alerts = open_alerts(conn, model)
    thresholds = config.model_dump(include={"psi_alert", "agreement_alert", "positive_rate_change_alert"})
    return {"versions": versions, "alerts": alerts, "thresholds": thresholds, "window_days": config.window_days}
