"""Operations from the command line: applying the retention policy."""

from __future__ import annotations

from typing import Annotated

import typer

from dicomnode.cli.render import ConfigOption, catalog_of, fail, settings_from


def retention(
    config: ConfigOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing", metavar="")
    ] = False,
) -> None:
    """Apply the retention policy once: delete old studies (or, with --dry-run, list them)."""
    from dicomnode.ops.retention import apply, plan
    from dicomnode.receive.storage import Storage

    settings = settings_from(config)
    if not settings.retention.enabled:
        fail("no retention policy: set retention.max_age_days or retention.disk_high_watermark_percent", 2)
    catalog, storage = catalog_of(settings), Storage(settings.storage.path, settings.storage.min_free_bytes)
    doomed = plan(catalog, storage, settings.retention)
    for d in doomed:
        when = d.last_received_at.isoformat(timespec="seconds")
        typer.echo(
            f"{'would delete' if dry_run else 'deleting'} {d.study_instance_uid} last received {when} "
            f"{d.size_bytes} bytes: {d.reason}"
        )
    if dry_run:
        typer.echo(f"{len(doomed)} studies would be deleted (dry run: nothing deleted)")
        return
    typer.echo(f"{apply(catalog, storage, doomed)} studies deleted")
