"""The `dicomnode` command line."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dicomnode.config.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import Connection, Engine

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
console = Console(stderr=True, soft_wrap=True)  # errors stay one line each: logs and tests grep them
log = logging.getLogger("dicomnode")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file; DICOMNODE_* env vars override it."),
]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        raise typer.Exit(2) from None


def _catalog(settings: Settings) -> Engine:
    from dicomnode.catalog.db import CatalogSchemaError, open_catalog

    try:
        return open_catalog(settings.catalog.url)
    except CatalogSchemaError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def serve(config: ConfigOption = None) -> None:
    """Run the node: DICOM listener, catalog and study assembly."""
    from dicomnode.node import Node
    from dicomnode.ops.logs import setup_logging

    settings = _settings(config)
    setup_logging(settings.log.level, settings.log.format)
    from dicomnode.catalog.db import CatalogSchemaError

    try:
        node = Node(settings)
        node.start()
    except (OSError, CatalogSchemaError) as exc:
        log.error("cannot start: %s", exc)
        raise typer.Exit(1) from None

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        node.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    node.wait()


@app.command()
def echo(
    host: str,
    port: int,
    aet: Annotated[str, typer.Option(help="Called AE title")] = "ANY-SCP",
    calling_aet: Annotated[str, typer.Option(help="Our AE title")] = "DICOMNODE",
) -> None:
    """C-ECHO a DICOM node (verification)."""
    from dicomnode.dicom.scu import AssociationFailed, Destination
    from dicomnode.dicom.scu import echo as c_echo

    dest = Destination(aet, host, port)
    try:
        code = c_echo(dest, calling_aet)
    except AssociationFailed as exc:
        console.print(f"[red]echo failed:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None
    typer.echo(f"C-ECHO {dest}: status 0x{code:04X}")
    raise typer.Exit(0 if code == 0 else 1)


@app.command()
def send(
    paths: Annotated[list[Path], typer.Argument(help="Files or folders (searched recursively)")],
    to: Annotated[str, typer.Option("--to", help="Destination AE@HOST:PORT")],
    calling_aet: Annotated[str, typer.Option(help="Our AE title")] = "DICOMNODE",
) -> None:
    """C-STORE files to a DICOM node, as stored (no transcoding)."""
    from dicomnode.dicom.scu import Destination, send_files

    try:
        dest = Destination.parse(to)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    files = sorted(_expand(paths))
    if not files:
        console.print("[red]error:[/red] no files found", highlight=False)
        raise typer.Exit(2)
    failures = []
    with Progress(
        TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console,
    ) as progress:  # fmt: skip
        task = progress.add_task("send", total=len(files))

        def on_result(result):  # noqa: ANN001, ANN202
            progress.advance(task)
            if not result.ok:
                failures.append(result)

        send_files(files, dest, calling_aet, on_result=on_result)
    for f in failures:
        code = "-" if f.status is None else f"0x{f.status:04X}"
        console.print(f"[red]failed[/red] {f.path}: status {code} {f.error or ''}", highlight=False)
    typer.echo(f"sent {len(files) - len(failures)} of {len(files)} to {dest}")
    raise typer.Exit(1 if failures else 0)


@app.command()
def studies(
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N studies")] = 200,
) -> None:
    """List the studies the catalog holds."""
    from dicomnode.catalog.records import list_studies

    settings = _settings(config)
    rows = list_studies(_catalog(settings), limit)
    table = Table("study UID", "called AE", "state", "modality", "series", "instances", "MB",
                  "priority", "last received (UTC)", "analysis")  # fmt: skip
    for s in rows:
        table.add_row(
            s.study_instance_uid, s.called_ae, s.state, s.modalities, str(s.series_count),
            str(s.instance_count), f"{s.size_bytes / 1e6:.1f}", s.requested_procedure_priority or "",
            s.last_received_at.isoformat(timespec="seconds"), s.analysis or "",
        )  # fmt: skip
    Console(width=200).print(table)


@app.command()
def worker(
    config: ConfigOption = None,
    gpu: Annotated[int | None, typer.Option(help="GPU index for this worker (sets CUDA_VISIBLE_DEVICES)")] = None,
    queues: Annotated[str | None, typer.Option(help="Model families to serve, comma-separated; default all")] = None,
    pool: Annotated[str, typer.Option(help="solo (one process) or prefork (one child, model loaded there)")] = "solo",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch in this worker")] = None,
    name: Annotated[str | None, typer.Option(help="Worker node name; default dicomnode-<gpu|cpu>@host")] = None,
) -> None:
    """Run one Celery analysis worker process (one per GPU)."""
    from dicomnode.jobs.lifecycle import queue_for

    settings = _settings(config)
    if not settings.analysis.broker_url:
        console.print("[red]error:[/red] analysis.broker_url is not set (DICOMNODE_ANALYSIS__BROKER_URL); "
                      "without a broker `dicomnode serve` runs the analysis itself", highlight=False)  # fmt: skip
        raise typer.Exit(2)
    if pool not in ("solo", "prefork"):
        console.print("[red]error:[/red] --pool must be solo or prefork", highlight=False)
        raise typer.Exit(2)
    families = queues.split(",") if queues else settings.registry.families()
    env = {**os.environ, "DICOMNODE_WORKER_FAMILIES": ",".join(f.strip() for f in families)}
    if config is not None:
        env["DICOMNODE_CONFIG"] = str(config.resolve())
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(gpu)  # set before anything can initialise CUDA
    if threads is not None:
        env["DICOMNODE_ANALYSIS__TORCH_THREADS"] = str(threads)
    node_name = name or f"dicomnode-{'gpu' + str(gpu) if gpu is not None else 'cpu'}@%h"
    argv = [sys.executable, "-m", "celery", "-A", "workers.worker", "worker", "--pool", pool, "--concurrency", "1",
            "--prefetch-multiplier", "1", "-Q", ",".join(queue_for(f.strip()) for f in families), "-n", node_name,
            "--loglevel", settings.log.level, "--without-gossip", "--without-mingle"]  # fmt: skip
    os.execve(sys.executable, argv, env)


@app.command()
def jobs(
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(help="Only jobs in this state: pending, running, done, failed")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N jobs")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, full error text")] = False,
) -> None:
    """List analysis jobs: state, attempts, last error, timings."""
    from dataclasses import asdict

    from dicomnode.jobs.lifecycle import list_jobs
    from dicomnode.routing.priority import PriorityClass

    settings = _settings(config)
    rows = list_jobs(_catalog(settings), state, limit)
    if as_json:
        for j in rows:
            typer.echo(json.dumps({**asdict(j), "priority": PriorityClass(j.priority).name}, default=str))
        return
    table = Table("job", "study UID", "model", "state", "priority", "attempts", "created (UTC)", "total s",
                  "last error")  # fmt: skip
    for j in rows:
        total = f"{j.timings['total_s']:.2f}" if j.timings else ""
        table.add_row(
            str(j.id), j.study_instance_uid, j.model, j.state, PriorityClass(j.priority).name, str(j.attempts),
            j.created_at.isoformat(timespec="seconds"), total, j.last_error or "",
        )  # fmt: skip
    Console(width=220).print(table)


@app.command()
def retry(job_id: int, config: ConfigOption = None) -> None:
    """Give a failed job a fresh set of attempts (the running node publishes it)."""
    from dicomnode.jobs.lifecycle import retry_failed

    settings = _settings(config)
    with _catalog(settings).begin() as conn:
        if not retry_failed(conn, job_id):
            console.print(f"[red]error:[/red] job {job_id} does not exist or has not failed", highlight=False)
            raise typer.Exit(1)
    typer.echo(f"job {job_id} is pending again")


exports_app = typer.Typer(help="The export outbox: results on their way to PACS.", invoke_without_command=True)
app.add_typer(exports_app, name="exports")


@exports_app.callback()
def exports_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(help="Only sends in this state: pending, sending, sent, dead")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N sends")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, full error text")] = False,
) -> None:
    """List sends of results to their destinations: state, attempts, next try, last error."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from dicomnode.export.dicom import list_exports

    settings = _settings(config)
    with _catalog(settings).connect() as conn:
        rows = list_exports(conn, state, limit)
    if as_json:
        for e in rows:
            typer.echo(json.dumps(asdict(e), default=str))
        return
    table = Table("id", "study UID", "SOP instance UID", "destination", "state", "attempts", "next try (UTC)",
                  "last error")  # fmt: skip
    for e in rows:
        table.add_row(str(e.id), e.study_instance_uid, e.sop_instance_uid, e.destination, e.state, str(e.attempts),
                      e.not_before.isoformat(timespec="seconds") if e.state == "pending" else "",
                      e.last_error or "")  # fmt: skip
    Console(width=240).print(table)


@exports_app.command("retry")
def exports_retry(export_id: int, config: ConfigOption = None) -> None:
    """Give a dead send a fresh set of attempts (the running node sends it at its next round)."""
    from dicomnode.export.dicom import retry_dead

    _retry_dead(config, retry_dead, "export", export_id)


def _retry_dead(config: Path | None, retry: Callable[[Connection, int], bool], what: str, row_id: int) -> None:
    settings = _settings(config)
    with _catalog(settings).begin() as conn:
        if not retry(conn, row_id):
            console.print(f"[red]error:[/red] {what} {row_id} does not exist or is not dead", highlight=False)
            raise typer.Exit(1)
    typer.echo(f"{what} {row_id} is pending again")


notifications_app = typer.Typer(help="The webhook outbox: critical-finding notifications.",
                                invoke_without_command=True)  # fmt: skip
app.add_typer(notifications_app, name="notifications")


@notifications_app.callback()
def notifications_list(
    ctx: typer.Context,
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(help="Only those in this state: pending, sending, sent, dead")] = None,
    limit: Annotated[int, typer.Option(help="Most recent N")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """List webhook notifications: finding, state, attempts, last error."""
    if ctx.invoked_subcommand is not None:
        return
    from dataclasses import asdict

    from dicomnode.export.webhook import list_notifications

    settings = _settings(config)
    with _catalog(settings).connect() as conn:
        rows = list_notifications(conn, state, limit)
    if as_json:
        for n in rows:
            typer.echo(json.dumps(asdict(n), default=str))
        return
    table = Table("id", "study UID", "finding", "state", "attempts", "last error")
    for n in rows:
        table.add_row(str(n.id), n.study_instance_uid, n.label, n.state, str(n.attempts), n.last_error or "")
    Console(width=200).print(table)


@notifications_app.command("retry")
def notifications_retry(notification_id: int, config: ConfigOption = None) -> None:
    """Give a dead notification a fresh set of attempts."""
    from dicomnode.export.webhook import retry_dead

    _retry_dead(config, retry_dead, "notification", notification_id)


@app.command()
def worklist(
    config: ConfigOption = None,
    order: Annotated[str, typer.Option(help="urgency or arrival")] = "urgency",
    limit: Annotated[int, typer.Option(help="First N items")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """The reading worklist as readers see it: rank, priority, state and why each study is where it is."""
    from dicomnode.api.serializers import item_json
    from dicomnode.catalog.db import utcnow
    from dicomnode.worklist.order import ranked

    if order not in ("urgency", "arrival"):
        console.print("[red]error:[/red] --order is urgency or arrival", highlight=False)
        raise typer.Exit(2)
    settings = _settings(config)
    now = utcnow()
    with _catalog(settings).connect() as conn:
        rows = conn.execute(ranked(settings.worklist.scoring, now, order).limit(limit)).all()  # type: ignore[arg-type]
    views = [item_json(r, now, settings.worklist.scoring) for r in rows]
    if as_json:
        for v in views:
            typer.echo(json.dumps(v))
        return
    # no patient names or IDs on a terminal whose output may end up in a ticket: the study UID identifies
    table = Table("rank", "priority", "state", "modality", "study UID", "waiting (min)", "why")
    for v in views:
        table.add_row(str(v["rank"]), v["priority"], v["state"], v["modalities"], v["study_instance_uid"],
                      f"{v['waiting_minutes']:.0f}", v["explanation"])  # fmt: skip
    Console(width=240).print(table)


@app.command()
def audit(
    study_uid: Annotated[str | None, typer.Argument(help="One study's trail; omitted: the most recent acts")] = None,
    config: ConfigOption = None,
    limit: Annotated[int, typer.Option(help="Most recent N acts (without a study UID)")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line")] = False,
) -> None:
    """Who or what touched a study: received from, analysed by, exported to, claimed and completed by, deleted."""
    from dicomnode.ops.audit import trail

    settings = _settings(config)
    with _catalog(settings).connect() as conn:
        rows = trail(conn, study_uid, limit)
    if study_uid and not rows:
        console.print(f"[red]error:[/red] no audit trail for study {study_uid}", highlight=False)
        raise typer.Exit(1)
    if as_json:
        for r in rows:
            typer.echo(json.dumps({k: str(v) if k == "at" else v for k, v in r._mapping.items()}))
        return
    table = Table("when (UTC)", "study UID", "action", "by", "detail")
    for r in rows:
        table.add_row(r.at.isoformat(timespec="seconds"), r.study_instance_uid, r.action, r.actor, r.detail)
    Console(width=240).print(table)


@app.command()
def retention(
    config: ConfigOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be deleted; delete nothing")] = False,
) -> None:
    """Apply the [retention] policy once: delete old studies (or, with --dry-run, list them)."""
    from dicomnode.ops.retention import apply, plan
    from dicomnode.receive.storage import Storage

    settings = _settings(config)
    if not settings.retention.enabled:
        console.print("[red]error:[/red] no retention policy: set retention.max_age_days or "
                      "retention.disk_high_watermark_percent", highlight=False)  # fmt: skip
        raise typer.Exit(2)
    catalog, storage = _catalog(settings), Storage(settings.storage.path)
    doomed = plan(catalog, storage, settings.retention)
    for d in doomed:
        when = d.last_received_at.isoformat(timespec="seconds")
        typer.echo(f"{'would delete' if dry_run else 'deleting'} {d.study_instance_uid} last received {when} "
                   f"{d.size_bytes} bytes: {d.reason}")  # fmt: skip
    if dry_run:
        typer.echo(f"{len(doomed)} studies would be deleted (dry run: nothing deleted)")
        return
    typer.echo(f"{apply(catalog, storage, doomed)} studies deleted")


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option(help="Emptied and used for the demo's node, PACS and studies")] = Path(
        "var/demo"
    ),
    keep: Annotated[bool, typer.Option("--keep", help="Keep running afterwards to look at the web worklist")] = False,
    http_port: Annotated[int, typer.Option(help="Web worklist port (0: any free port)")] = 0,
) -> None:
    """Push synthetic studies (CT heads, chest X-rays, routine and acute) to a node with dcmtk, and show the SR/SEG
    reaching a PACS stand-in and the worklist reordered."""
    from dicomnode.demo.run import DemoError, run_demo

    try:
        run_demo(workdir.resolve(), typer.echo, keep_running=keep, http_port=http_port)
    except DemoError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from None


models_app = typer.Typer(no_args_is_help=True, help="Detection models: list, check, train, evaluate.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(config: ConfigOption = None) -> None:
    """The models this node can run: built-in, from analysis.models_dir, and plugins."""

    settings = _settings(config)
    registry = settings.registry
    table = Table("model", "version", "family (queue)", "task", "modalities", "weights UID", "trainable")
    for name in registry.names():
        spec = registry.get(name)
        m = spec.manifest
        table.add_row(spec.name, spec.version, spec.family, m.task if m else "plugin",
                      ",".join(m.modalities) if m else "", spec.uid, "yes" if spec.trainer else "")  # fmt: skip
    Console(width=220).print(table)


@models_app.command("check")
def models_check(
    path: Annotated[Path, typer.Argument(help="A model folder (manifest.toml + weights) or its manifest")],
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N")] = "cpu",
) -> None:
    """Load a bring-your-own model and run it once on a generated sample: exit 0 when it is usable."""
    from models.check import ModelCheckFailed, check_model
    from models.manifest import ManifestError

    try:
        report = check_model(path, device)
    except (ManifestError, ModelCheckFailed) as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(
        f"{report.name} {report.version} (weights UID {report.uid}): ran on {report.sample} in {report.seconds} s; "
        f"probability maps {report.probability_maps}; {report.findings} finding(s). OK"
    )


@models_app.command("train")
def models_train(
    name: str,
    seed: Annotated[int, typer.Option(help="Seed for phantoms and initialisation")] = 0,
    steps: Annotated[int | None, typer.Option(help="Training steps; default the model's own")] = None,
) -> None:
    """Train a built-in model on generated phantoms (CPU), replace its committed weights, and calibrate it."""
    from models.registry import build_registry

    try:
        record = build_registry().get(name).train(seed, steps)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(record))


@models_app.command("evaluate")
def models_evaluate(
    name: str,
    config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out phantoms (far from training's)")] = 1_000_000,
    cases: Annotated[int | None, typer.Option(help="Number of phantom studies; default the model's own")] = None,
    dicom: Annotated[Path | None, typer.Option(help="Evaluate on this labelled DICOM folder instead")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels CSV for --dicom; default FOLDER/labels.csv")] = None,
    roc: Annotated[Path | None, typer.Option(help="Where to write the ROC curve; default ./NAME-roc.png")] = None,
) -> None:
    """AUC, sensitivity and specificity at the threshold, Dice (segmenters), calibration error, and a ROC PNG:
    on held-out phantoms, or on your labelled DICOM folder (--dicom; label format in the README)."""
    from models.roc_plot import write_roc_png

    try:
        spec = _settings(config).registry.get(name)
        if dicom is not None:
            figures = _evaluate_folder(spec, dicom, labels or dicom / "labels.csv")
        else:
            figures = spec.evaluate("cpu", seed, cases)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    curve = figures.pop("roc")
    roc = roc or Path(f"{name}-roc.png")
    point = (1 - figures["specificity"], figures["sensitivity"])
    write_roc_png(roc, curve["fpr"], curve["tpr"], f"{name} {spec.version}: AUC {figures['auc']:.3f}", point)
    typer.echo(json.dumps(figures))
    typer.echo(f"ROC curve: {roc}", err=True)


def _evaluate_folder(spec, folder: Path, labels: Path) -> dict:  # noqa: ANN001
    from dicomnode.analysis.folder import folder_cases
    from dicomnode.analysis.volume import StudyUnreadable
    from models.phantom_evaluation import figures, score_cases

    detector = spec.load("cpu")
    try:
        return figures(detector, score_cases(detector, folder_cases(folder, labels, detector.manifest.modalities)))
    except StudyUnreadable as exc:
        raise ValueError(str(exc)) from None


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


if __name__ == "__main__":
    sys.exit(app())
