"""The API's own documentation: Swagger UI from the swagger-ui-bundle package (offline, no CDN), and the OpenAPI
schema behind a reader token. The page itself holds nothing: it asks for the token, as the worklist does."""

from __future__ import annotations

from importlib.resources import files
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from dicomnode.api.auth import reader

ASSETS = "/api/docs/assets"
router = APIRouter(include_in_schema=False)
_PAGE = files("dicomnode.api").joinpath("docs.html")


@router.get("/api/docs", response_class=HTMLResponse)
def swagger_ui() -> str:
    return _PAGE.read_text()


@router.get("/api/openapi.json")
def openapi_schema(request: Request, _reader: Annotated[str, Depends(reader)]) -> dict[str, Any]:
    return request.app.openapi()


def mount_assets(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
    app.mount("/static", StaticFiles(directory=str(files("dicomnode.api").joinpath("static"))), name="static")
