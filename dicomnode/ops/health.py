"""`/healthz`: is each part the node needs working? DICOM listener, catalog, broker (distributed mode), disk."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, text

from dicomnode.config.settings import Settings
from dicomnode.receive.storage import Storage


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


def check_all(settings: Settings, catalog: Engine, listener_up: Callable[[], bool], storage: Storage) -> dict[str, Any]:
    """{"status": "ok" | "failing", "checks": {name: {ok, detail}}}; details hold no patient data."""
    checks = {
        "dicom_listener": _guard(lambda: Check(listener_up(), f"port {settings.dicom.port}")),
        "catalog": _guard(lambda: _catalog(catalog)),
        "broker": _guard(lambda: _broker(settings.analysis.broker_url)),
        "disk": _guard(lambda: _disk(storage)),
    }
    return {
        "status": "ok" if all(c.ok for c in checks.values()) else "failing",
        "checks": {name: asdict(c) for name, c in checks.items()},
    }


def _guard(check: Callable[[], Check]) -> Check:
    try:
        return check()
    except Exception as exc:  # a health check reports failures, it never raises them
        return Check(False, f"{type(exc).__name__}: {exc}"[:300])


def _catalog(catalog: Engine) -> Check:
    with catalog.connect() as conn:
        conn.execute(text("SELECT 1"))
    return Check(True, catalog.dialect.name)


def _broker(url: str | None) -> Check:
    if url is None:
        return Check(True, "embedded (no broker)")
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return Check(True, "redis answers")


def _disk(storage: Storage) -> Check:
    free, floor = storage.free_bytes(), storage.min_free_bytes
    gib = free / 1024**3
    if free < floor:
        return Check(False, f"{gib:.1f} GiB free, below storage.min_free_bytes ({floor / 1024**3:.1f} GiB)")
    return Check(True, f"{gib:.1f} GiB free")
