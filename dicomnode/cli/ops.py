"""Operations from the command line: applying the retention policy, checking storage against the catalog."""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated

import typer

from dicomnode.cli.render import ConfigOption, JsonOption, catalog_of, fail, settings_from


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


def doctor(config: ConfigOption = None, json_out: JsonOption = False) -> None:
    """Check the catalog against storage: missing files, size mismatches, files without a row, quarantined files.

    Exits 1 when anything disagrees. The node itself indexes or quarantines files without a row at start-up.
    """
    from dicomnode.receive.reconcile import survey
    from dicomnode.receive.storage import Storage

    settings = settings_from(config)
    storage = Storage(settings.storage.path, settings.storage.min_free_bytes)
    found = survey(storage, catalog_of(settings))
    if json_out:
        typer.echo(json.dumps(dataclasses.asdict(found) | {"healthy": found.healthy}))
    else:
        typer.echo(f"{found.instances} instances in the catalog, storage at {storage.root}")
        for path in found.missing:
            typer.echo(f"missing file: {path}")
        for path, catalogued, on_disk in found.size_mismatch:
            typer.echo(f"size differs: {path} catalog {catalogued} bytes, disk {on_disk} bytes")
        for path in found.orphans:
            typer.echo(f"no catalog row: {path}")
        for name in found.quarantined:
            typer.echo(f"quarantined: {storage.quarantine_dir / name}")
        if found.unfinished_deletions:
            typer.echo(f"{found.unfinished_deletions} interrupted deletions (finished at the next start)")
        typer.echo("ok" if found.healthy else "problems found")
    if not found.healthy:
        raise typer.Exit(1)


def health(config: ConfigOption = None) -> None:
    """Ask the running node's /healthz, at the port and scheme of its config: exit 0 when healthy, 1 otherwise
    (the Docker HEALTHCHECK, or any monitor)."""
    import httpx

    http = settings_from(config).http
    if not http.enabled:
        fail("http.enabled is false: the node serves no /healthz (check the DICOM port with `dicomnode echo`)", 2)
    scheme = "https" if http.tls_cert_file else "http"
    host = "127.0.0.1" if http.host in ("0.0.0.0", "::", "") else http.host
    try:
        # verify=False: a loopback call to our own server, whose certificate names the public host
        response = httpx.get(f"{scheme}://{host}:{http.port}/healthz", timeout=8, verify=False)
    except httpx.HTTPError as exc:
        fail(f"no answer from {scheme}://{host}:{http.port}/healthz: {type(exc).__name__}")
    typer.echo(response.text)
    raise typer.Exit(0 if response.status_code == 200 else 1)
