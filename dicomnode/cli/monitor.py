"""`dicomnode monitor`: does the AI still work, per model version."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from dicomnode.cli.render import Column, ConfigOption, JsonOption, WideOption, catalog_of, emit, fail, settings_from

monitor_app = typer.Typer(invoke_without_command=True, no_args_is_help=False, help=__doc__)
ModelOption = Annotated[str | None, typer.Option(help="Only this model")]
SinceOption = Annotated[
    str | None, typer.Option(help="Window start, ISO date or date-time UTC (default: window_days ago)")
]


def _figures(config: Path | None, model: str | None, since: str | None) -> tuple:
    from dicomnode.catalog.db import utcnow
    from dicomnode.ops.monitoring.alerts import open_alerts
    from dicomnode.ops.monitoring.figures import monitored

    settings = settings_from(config)
    try:
        start = datetime.fromisoformat(since) if since else None
    except ValueError:
        fail(f"--since {since!r} is not an ISO date or date-time", 2)
    with catalog_of(settings).connect() as conn:
        versions = monitored(conn, settings.monitoring, utcnow(), model, start)
        alerts = open_alerts(conn, model)
    return settings, versions, alerts


@monitor_app.callback()
def monitor(
    ctx: typer.Context,
    config: ConfigOption = None,
    model: ModelOption = None,
    since: SinceOption = None,
    as_json: JsonOption = False,
    wide: WideOption = False,
) -> None:
    """Per model version: studies analysed, positive rate against the baseline's, failed and out-of-scope rates,
    time to result, the largest input drift, readers' agreement with its 95% interval, and open alerts."""
    if ctx.invoked_subcommand:  # `monitor --config F report`: the subcommand takes the group's options too
        ctx.obj = {"config": config, "model": model, "since": since}
        return
    from dicomnode.ops.monitoring.alerts import of_version

    _, versions, alerts = _figures(config, model, since)
    for v in versions:
        v["alerts"] = of_version(alerts, v)
    emit(versions, COLUMNS, as_json, as_dict=lambda v: v, wide=wide)


def _largest_drift(v: dict) -> str:
    psi = {k: p for k, p in v["drift"]["psi"].items() if p is not None}
    worst = max(psi, key=lambda k: psi[k]) if psi else None
    return f"{worst} {psi[worst]:.2f}" if worst else "-"


def _agreement(v: dict) -> str:
    fb = v["feedback"]
    if fb["agreement_rate"] is None:
        return "-"
    low, high = fb["agreement_ci95"]
    return f"{fb['agreement_rate']:.0%} ({low:.0%}-{high:.0%}) of {fb['agree'] + fb['disagree']}"


COLUMNS = [
    Column("model", lambda v: v["model"]),
    Column("version", lambda v: v["model_version"]),
    Column("studies", lambda v: v["analysed"]),
    Column("positive", lambda v: _pct(v["positive_rate"])),
    Column("baseline", lambda v: _pct(v["baseline_positive_rate"])),
    Column("failed", lambda v: _pct(v["jobs"]["failed_rate"])),
    Column("out of scope", lambda v: _pct(v["jobs"]["out_of_scope_rate"])),
    Column(
        "to result",
        lambda v: "-" if v["time_to_result_s"]["mean"] is None else f"{v['time_to_result_s']['mean']:.0f} s",
    ),
    Column("largest drift", _largest_drift),
    Column("agreement", _agreement),
    Column("alerts", lambda v: ", ".join(a["kind"] for a in v["alerts"]) or "-"),
]


@monitor_app.command("report")
def report(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option(help="PNG or PDF file to write")],
    config: ConfigOption = None,
    model: ModelOption = None,
    since: SinceOption = None,
) -> None:
    """The figures as one page (PNG, or PDF by the file's suffix) for a quality meeting."""
    from dicomnode.ops.monitoring.report import render

    if out.suffix.lower() not in (".png", ".pdf"):
        fail("--out must end in .png or .pdf", 2)
    group = ctx.obj or {}
    settings, versions, alerts = _figures(
        config or group.get("config"), model or group.get("model"), since or group.get("since")
    )
    render(versions, alerts, settings.monitoring, out)
    typer.echo(f"wrote {out}")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
