"""The one way commands talk back: tables sized to the terminal (or JSON lines), errors on stderr with an exit
code, and the settings and catalog every command opens."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from dicomnode.config.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

console = Console(stderr=True, soft_wrap=True)  # errors stay one line each: logs and tests grep them

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", envvar="DICOMNODE_CONFIG", help="TOML config file; DICOMNODE_* env vars override it."
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON object per line, full text", metavar="")]
WideOption = Annotated[bool, typer.Option("--wide", help="As wide as the table, whatever the terminal", metavar="")]


def fail(message: str, code: int = 1, prefix: str = "error:") -> NoReturn:
    """Say what went wrong on stderr and exit with `code` (2: the command line or configuration is wrong)."""
    console.print(f"[red]{prefix}[/red] {message}", highlight=False)
    raise typer.Exit(code)


def settings_from(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        fail(str(exc), 2)


def catalog_of(settings: Settings) -> Engine:
    """The catalog the settings name; a SQLite file that does not exist is an error here, never a new catalog."""
    from dicomnode.catalog.db import CatalogSchemaError, open_catalog, sqlite_path

    path = sqlite_path(settings.catalog.url)
    if path is not None and not path.exists():
        fail(
            f"no catalog at {path} (catalog.url from {settings.source}); pass the node's config with --config "
            "(after `make demo`: --config var/demo/dicomnode.toml)"
        )
    try:
        return open_catalog(settings.catalog.url)
    except CatalogSchemaError as exc:
        fail(str(exc))


@dataclass(frozen=True)
class Column:
    header: str
    value: Callable[[Any], object]
    uid: bool = False  # wrapped whole, never cut: a UID must stay pastable


def emit(
    rows: Sequence[Any],
    columns: Sequence[Column],
    as_json: bool = False,
    as_dict: Callable[[Any], dict[str, Any]] | None = None,
    wide: bool = False,
) -> None:
    """JSON lines (`as_dict` of each row, default its dataclass fields) or a table of `columns`; an empty table
    says so on stderr."""
    if as_json:
        from dataclasses import asdict

        for row in rows:
            typer.echo(json.dumps(as_dict(row) if as_dict else asdict(row), default=str))
        return
    table = Table(*(c.header for c in columns))
    for column, spec in zip(table.columns, columns, strict=True):
        if spec.uid:
            column.overflow = "fold"
    for row in rows:
        table.add_row(*(_cell(c.value(row)) for c in columns))
    print_table(table, wide)
    if not rows:
        console.print("(nothing to list)", highlight=False)


def print_table(table: Table, wide: bool = False) -> None:
    """To a terminal: as wide as the terminal, unless `wide`. To a pipe or file: as wide as the table, one line
    per row."""
    out = Console()
    if wide or not out.is_terminal:
        out = Console(width=max(80, Console(width=100_000).measure(table).maximum))
    out.print(table)


def _cell(value: object) -> str:
    return "" if value is None else str(value)
