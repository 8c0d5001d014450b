"""Engine creation and dialect details (SQLite WAL embedded, PostgreSQL shared)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event, inspect
from sqlalchemy.dialects import postgresql, sqlite

from dicomnode.catalog.schema import Base
from dicomnode.errors import DicomnodeError


def utcnow() -> datetime:
    """Catalog timestamps are naive UTC (the same in SQLite and PostgreSQL)."""
    return datetime.now(UTC).replace(tzinfo=None)


def posix_seconds(moment: datetime) -> float:
    """A catalog timestamp (naive UTC) as POSIX seconds, for arithmetic in SQL."""
    return moment.replace(tzinfo=UTC).timestamp()


class CatalogSchemaError(DicomnodeError, RuntimeError):
    """The database holds tables of an older dicomnode whose columns this version needs."""


def open_catalog(url: str) -> Engine:
    """Connect to the catalog, create missing tables, and refuse a catalog whose tables lack columns."""
    if url.startswith("sqlite"):
        engine = _sqlite_engine(url)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)
    Base.metadata.create_all(engine)
    _require_columns(engine)
    return engine


def _require_columns(engine: Engine) -> None:
    # create_all adds missing tables, never missing columns; there are no migrations yet.
    inspector = inspect(engine)
    missing = []
    for table in Base.metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [f"{table.name}.{column.name}" for column in table.columns if column.name not in present]
    if missing:
        raise CatalogSchemaError(
            f"the catalog was created by an older dicomnode and lacks {', '.join(missing)}; "
            "there are no schema migrations yet: add the columns by hand or start a new catalog"
        )


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite catalog URL; None for another database or an in-memory one."""
    if not url.startswith("sqlite") or ":///" not in url:
        return None
    database = url.split(":///", 1)[1].split("?", 1)[0]
    return Path(database) if database and database != ":memory:" else None


def _sqlite_engine(url: str) -> Engine:
    database = sqlite_path(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before it returns; "success means durable".
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return engine


def insert_for(dialect: str, table: Table) -> Any:
    """An INSERT that supports on_conflict_do_update/do_nothing on SQLite and PostgreSQL."""
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported catalog database: {dialect} (use SQLite or PostgreSQL)")
