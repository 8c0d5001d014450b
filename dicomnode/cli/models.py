"""Detection models: list, check a bring-your-own model, train a built-in one, evaluate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dicomnode.cli.render import Column, ConfigOption, JsonOption, WideOption, console, emit, fail, settings_from

models_app = typer.Typer(no_args_is_help=True, help="Detection models: list, check, train, evaluate.")


@models_app.command("list")
def models_list(config: ConfigOption = None, as_json: JsonOption = False, wide: WideOption = False) -> None:
    """The models this node can run: built-in, from analysis.models_dir, and plugins."""
    registry = settings_from(config).registry
    specs = [registry.get(name) for name in registry.names()]
    emit(
        specs,
        [
            Column("model", lambda s: s.name),
            Column("version", lambda s: s.version),
            Column("family (queue)", lambda s: s.family),
            Column("task", lambda s: s.manifest.task if s.manifest else "plugin"),
            Column("modalities", lambda s: ",".join(s.manifest.modalities) if s.manifest else ""),
            Column("weights UID", lambda s: s.uid, uid=True),
            Column("trainable", lambda s: "yes" if s.trainer else ""),
        ],
        as_json,
        as_dict=lambda s: {
            "model": s.name,
            "version": s.version,
            "family": s.family,
            "weights_uid": s.uid,
            "modalities": s.manifest.modalities if s.manifest else [],
            "trainable": bool(s.trainer),
        },
        wide=wide,
    )


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
        fail(str(exc), 2)
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
        record = build_registry().get(name).train(seed, steps)  # built-in models only: no configuration needed
    except ValueError as exc:
        fail(str(exc), 2)
    typer.echo(json.dumps(record))


@models_app.command("evaluate")
def models_evaluate(
    name: str,
    config: ConfigOption = None,
    seed: Annotated[int, typer.Option(help="Seed of the held-out phantoms (far from training's)")] = 1_000_000,
    cases: Annotated[int | None, typer.Option(help="Number of phantom studies; default the model's own")] = None,
    dicom: Annotated[Path | None, typer.Option(help="Evaluate on this labelled DICOM folder instead")] = None,
    labels: Annotated[Path | None, typer.Option(help="Labels CSV for --dicom; default FOLDER/labels.csv")] = None,
    roc: Annotated[
        Path | None, typer.Option(help="Write the ROC curve as a PNG here (nothing is written unasked)")
    ] = None,
    cases_csv: Annotated[
        Path | None, typer.Option("--csv", help="Write one row per study here: score, label, findings, volume")
    ] = None,
) -> None:
    """AUC, sensitivity and specificity at the threshold with 95% intervals, Dice (segmenters), calibration error,
    subgroups, lesion-level sensitivity and volume error, a per-study CSV and a ROC PNG: on held-out phantoms, or
    on your labelled DICOM folder (--dicom; label format in the README). A negative-only folder gives specificity
    and the false-positive rate; unreadable and out-of-scope studies are counted and listed, not fatal."""
    from models.phantom_evaluation import figures as phantom_figures
    from models.phantom_evaluation import write_cases_csv
    from models.roc_plot import write_roc_png

    columns = (TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        spec = settings_from(config).registry.get(name)
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("cases", total=cases or (spec.phantom_cases if dicom is None else None))
            on_case = lambda: progress.advance(task)  # noqa: E731 - one case scored
            if dicom is not None:
                scored, detector = _score_folder(spec, dicom, labels or dicom / "labels.csv", on_case)
            else:
                scored, detector = spec.score_phantoms("cpu", seed, cases, on_case=on_case)
        figures = phantom_figures(detector, scored)
    except ValueError as exc:
        fail(str(exc), 2)
    if cases_csv is not None:
        write_cases_csv(scored, cases_csv)
        typer.echo(f"cases: {cases_csv}", err=True)
    curve = figures.pop("roc", None)
    typer.echo(json.dumps(figures))
    if roc is not None:
        if curve is None:
            fail("no ROC curve: the set needs positives and negatives", 2)
        point = (1 - figures["specificity"], figures["sensitivity"])
        write_roc_png(roc, curve["fpr"], curve["tpr"], f"{name} {spec.version}: AUC {figures['auc']:.3f}", point)
        typer.echo(f"ROC curve: {roc}", err=True)


def _score_folder(spec: Any, folder: Path, labels: Path, on_case: Callable[[], None]) -> tuple[Any, Any]:
    from dicomnode.analysis.folder import folder_cases
    from models.phantom_evaluation import score_cases

    detector = spec.load("cpu")
    return score_cases(detector, folder_cases(folder, labels, detector.manifest), on_case), detector
