"""The outboxes: results on their way to PACS (exports), to the RIS (hl7) and critical-finding webhooks
(notifications)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from dicomnode.catalog.states import OutboxState
from dicomnode.cli.render import Column, ConfigOption, JsonOption, WideOption, catalog_of, emit, fail, settings_from

StateOption = Annotated[OutboxState | None, typer.Option(help="Only sends in this state")]
exports_app = typer.Typer(help="The export outbox: results on their way to PACS.", invoke_without_command=True)
notifications_app = typer.Typer(help="The webhook outbox: critical-finding notifications.", invoke_without_command=True)
hl7_app = typer.Typer(
    help="The HL7 outbox: results (ORU^R01) and priority changes to the RIS.", invoke_without_command=True
)


@exports_app.callback()
def exports_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    state: StateOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N sends")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List sends of results to their destinations: state, attempts, next try, last error."""
    if ctx.invoked_subcommand is not None:
        return
    from dicomnode.export.dicom import list_exports

    with catalog_of(settings_from(config)).connect() as conn:
        rows = list_exports(conn, state, limit)
    emit(
        rows,
        [
            Column("id", lambda e: e.id),
            Column("study UID", lambda e: e.study_instance_uid, uid=True),
            Column("SOP instance UID", lambda e: e.sop_instance_uid, uid=True),
            Column("kind", lambda e: e.kind),
            Column("destination", lambda e: e.destination),
            Column("state", lambda e: e.state),
            Column("attempts", lambda e: e.attempts),
            Column("next try (UTC)", _next_try),
            Column("last error", lambda e: e.last_error),
        ],
        as_json,
        wide=wide,
    )


@exports_app.command("retry")
def exports_retry(export_id: int, config: ConfigOption = None) -> None:
    """Give a dead send a fresh set of attempts (the running node sends it at its next round)."""
    from dicomnode.export.dicom import retry_dead

    _retry_dead(config, retry_dead, "export", export_id)


@notifications_app.callback()
def notifications_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    state: StateOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List webhook notifications: finding, state, attempts, last error."""
    if ctx.invoked_subcommand is not None:
        return
    from dicomnode.export.webhook import list_notifications

    with catalog_of(settings_from(config)).connect() as conn:
        rows = list_notifications(conn, state, limit)
    emit(
        rows,
        [
            Column("id", lambda n: n.id),
            Column("study UID", lambda n: n.study_instance_uid, uid=True),
            Column("finding", lambda n: n.label),
            Column("state", lambda n: n.state),
            Column("attempts", lambda n: n.attempts),
            Column("last error", lambda n: n.last_error),
        ],
        as_json,
        wide=wide,
    )


@notifications_app.command("retry")
def notifications_retry(notification_id: int, config: ConfigOption = None) -> None:
    """Give a dead notification a fresh set of attempts."""
    from dicomnode.export.webhook import retry_dead

    _retry_dead(config, retry_dead, "notification", notification_id)


@hl7_app.callback()
def hl7_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    state: StateOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N")] = 200,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """List HL7 messages to the RIS: kind, control ID, destination, state, attempts, last error (the ACK)."""
    if ctx.invoked_subcommand is not None:
        return
    from dicomnode.export.hl7 import list_messages

    with catalog_of(settings_from(config)).connect() as conn:
        rows = list_messages(conn, state, limit)
    emit(
        rows,
        [
            Column("id", lambda m: m.id),
            Column("study UID", lambda m: m.study_instance_uid, uid=True),
            Column("kind", lambda m: m.kind),
            Column("control ID", lambda m: m.control_id),
            Column("destination", lambda m: m.destination),
            Column("state", lambda m: m.state),
            Column("attempts", lambda m: m.attempts),
            Column("next try (UTC)", _next_try),
            Column("last error", lambda m: m.last_error),
        ],
        as_json,
        wide=wide,
    )


@hl7_app.command("retry")
def hl7_retry(message_id: int, config: ConfigOption = None) -> None:
    """Give a dead HL7 message a fresh set of attempts (the running node sends it at its next round)."""
    from dicomnode.export.hl7 import retry_dead

    _retry_dead(config, retry_dead, "hl7 message", message_id)


def _next_try(row: Any) -> str:
    """When a pending send is due (an outbox listing's not_before); nothing for sends in other states."""
    return row.not_before.isoformat(timespec="seconds") if row.state == OutboxState.PENDING else ""


def _retry_dead(config: ConfigOption, retry: Callable[[Connection, int], bool], what: str, row_id: int) -> None:
    with catalog_of(settings_from(config)).begin() as conn:
        if not retry(conn, row_id):
            fail(f"{what} {row_id} does not exist or is not dead")
    typer.echo(f"{what} {row_id} is pending again")
