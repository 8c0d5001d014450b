"""The FastAPI application: state shared by the routes, the routers mounted, domain errors mapped to HTTP."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from dicomnode.api.auth import Readers
from dicomnode.api.routes import docs, monitoring, retrieve, ups, worklist
from dicomnode.api.routes import operations as operation_routes
from dicomnode.api.security import SecurityHeaders
from dicomnode.config.settings import Settings
from dicomnode.errors import DicomnodeError
from dicomnode.worklist.items import ItemNotFound, NotTheClaimer, WorklistError
from dicomnode.worklist.key_images import NoKeyImage
from dicomnode.worklist.snapshot import RankedView
from dicomnode.worklist.watcher import WorklistWatcher

# The HTTP answer to each domain error a route lets through; the first class in an error's MRO wins.
HTTP_STATUS: dict[type[DicomnodeError], int] = {
    ItemNotFound: 404,
    NotTheClaimer: 409,
    WorklistError: 409,
    NoKeyImage: 404,
}


@dataclass(frozen=True)
class Operations:
    """What /metrics and /healthz read: the node's metrics and its health checks."""

    metrics: CollectorRegistry
    health: Callable[[], dict[str, Any]]


def create_app(
    settings: Settings, catalog: Engine, watcher: WorklistWatcher, operations: Operations | None = None
) -> FastAPI:
    # openapi_url None: the schema is served by routes/docs.py, behind a token. Labelled 3.0.3: the Swagger UI
    # that swagger-ui-bundle ships (4.x) refuses to render a 3.1 document, and ours uses nothing 3.1-only.
    app = FastAPI(title="dicomnode", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.openapi_version = "3.0.3"
    app.state.readers = Readers(settings.http.tokens)
    app.state.settings = settings
    app.state.catalog = catalog
    app.state.watcher = watcher
    app.state.view = RankedView(catalog, settings.worklist.scoring, watcher)
    app.state.operations = operations
    app.add_exception_handler(DicomnodeError, _domain_error)  # type: ignore[arg-type]
    app.include_router(worklist.router)
    app.include_router(monitoring.router)
    app.include_router(retrieve.router)
    if operations is not None:
        app.include_router(operation_routes.router)
    app.include_router(ups.router)
    app.include_router(docs.router)
    docs.mount_assets(app)
    app.add_middleware(SecurityHeaders)
    return app


def http_status(exc: DicomnodeError) -> int:
    """The HTTP status a domain error is answered with (500 for one no route should let through)."""
    return next((HTTP_STATUS[c] for c in type(exc).__mro__ if c in HTTP_STATUS), 500)


def _domain_error(_request: Request, exc: DicomnodeError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=http_status(exc))
