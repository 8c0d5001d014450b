"""DICOM from the command line: C-ECHO a node, C-STORE files to it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dicomnode.cli.render import ConfigOption, console, fail

if TYPE_CHECKING:
    from dicomnode.dicom.scu import SendResult


def echo(
    host: str,
    port: int,
    aet: Annotated[str, typer.Option(help="Called AE title")] = "ANY-SCP",
    calling_aet: Annotated[str, typer.Option(help="Our AE title")] = "DICOMNODE",
) -> None:
    """C-ECHO a DICOM node (verification)."""
    from dicomnode.dicom.scu import AssociationFailed, Destination
    from dicomnode.dicom.scu import echo as c_echo
    from dicomnode.dicom.status import SUCCESS, hex_code

    dest = Destination(aet, host, port)
    try:
        code = c_echo(dest, calling_aet)
    except AssociationFailed as exc:
        fail(str(exc), prefix="echo failed:")
    typer.echo(f"C-ECHO {dest}: status {hex_code(code)}")
    raise typer.Exit(0 if code == SUCCESS else 1)


def send(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    to: Annotated[str, typer.Option("--to", help="Destination AE@HOST:PORT")],
    calling_aet: Annotated[str, typer.Option(help="Our AE title")] = "DICOMNODE",
) -> None:
    """C-STORE files to a DICOM node, as stored (no transcoding)."""
    from dicomnode.dicom.scu import Destination, send_files
    from dicomnode.dicom.status import hex_code

    try:
        dest = Destination.parse(to)
    except ValueError as exc:
        fail(str(exc), 2)
    files = sorted(_expand(paths))
    if not files:
        fail("no files found", 2)
    failures: list[SendResult] = []
    columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("send", total=len(files))

        def on_result(result: SendResult) -> None:
            progress.advance(task)
            if not result.ok:
                failures.append(result)

        send_files(files, dest, calling_aet, on_result=on_result)
    for (code, error), paths in _by_cause(failures).items():
        examples = ", ".join(p.name for p in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
        console.print(
            f"[red]failed[/red] {len(paths)} of {len(files)}: status {hex_code(code)} {error or ''} ({examples})",
            highlight=False,
        )
    typer.echo(f"sent {len(files) - len(failures)} of {len(files)} to {dest}")
    raise typer.Exit(1 if failures else 0)


def _by_cause(failures: list[SendResult]) -> dict[tuple[int | None, str | None], list[Path]]:
    """Failures grouped by what went wrong: a dead port is one line, not one per file."""
    causes: dict[tuple[int | None, str | None], list[Path]] = {}
    for f in failures:
        causes.setdefault((f.status, f.error), []).append(f.path)
    return causes


def _expand(paths: list[Path]) -> list[Path]:
    found = []
    for p in paths:
        if p.is_dir():
            found.extend(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            found.append(p)
        else:
            console.print(f"[yellow]skipped[/yellow] {p}: not found", highlight=False)
    return found


def retrieve(
    source: Annotated[str, typer.Option("--from", help="The PACS: AE@HOST:PORT (tls:AE@HOST:PORT over TLS)")],
    accession: Annotated[str | None, typer.Option(help="Accession number of the study to pull")] = None,
    study: Annotated[str | None, typer.Option(help="Study Instance UID of the study to pull")] = None,
    config: ConfigOption = None,
) -> None:
    """Pull a study from a PACS to the running node (C-FIND by accession, C-MOVE to the node's AE title); it is
    then analysed like a pushed study. The PACS must know the node's AE title as a destination."""
    from dicomnode.cli.render import settings_from
    from dicomnode.dicom.pull import RetrieveFailed
    from dicomnode.dicom.pull import retrieve as pull
    from dicomnode.dicom.scu import AssociationFailed, Destination

    if bool(accession) == bool(study):
        fail("give --accession or --study, not both", 2)
    settings = settings_from(config)
    try:
        dest = Destination.parse(source, settings.export.tls_context())
    except ValueError as exc:
        fail(str(exc), 2)
    ae_title = settings.dicom.ae_title
    try:
        pulled = pull(dest, ae_title, accession, study, ae_title)
    except (RetrieveFailed, AssociationFailed) as exc:
        fail(str(exc), prefix="retrieve failed:")
    for p in pulled:
        typer.echo(f"{p.study_instance_uid}: {p.completed} instances sent to {ae_title}, {p.failed} failed")
    raise typer.Exit(0 if all(p.failed == 0 for p in pulled) else 1)
