"""The `dicomnode` command line."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dicomnode import __version__
from dicomnode.cli import catalog, dicom, node, ops, simulate, worklist
from dicomnode.cli.models import models_app
from dicomnode.cli.monitor import monitor_app
from dicomnode.cli.outbox import exports_app, hl7_app, notifications_app

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)


def _version(shown: bool) -> None:
    if shown:
        typer.echo(f"dicomnode {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """A PACS-integrated DICOM node and AI worklist prioritizer."""


for command in (
    node.serve,
    dicom.echo,
    dicom.send,
    dicom.retrieve,
    catalog.studies,
    node.worker,
    catalog.jobs,
    catalog.retry,
    worklist.worklist,
    worklist.feedback,
    simulate.simulate,
    catalog.audit,
    ops.retention,
    ops.doctor,
    ops.health,
    node.demo,
):
    app.command()(command)
app.add_typer(exports_app, name="exports")
app.add_typer(notifications_app, name="notifications")
app.add_typer(hl7_app, name="hl7")
app.add_typer(models_app, name="models")
app.add_typer(monitor_app, name="monitor")

if __name__ == "__main__":
    sys.exit(app())
