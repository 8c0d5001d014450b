"""`dicomnode simulate`: try a reading-room priority policy before go-live."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dicomnode.cli.render import Column, ConfigOption, catalog_of, emit, fail, settings_from


def simulate(
    config: ConfigOption = None,
    arrivals: Annotated[
        Path | None, typer.Option(help="CSV of arrivals: time, modality, order_class, truth (default: synthetic)")
    ] = None,
    from_catalog: Annotated[
        bool,
        typer.Option("--from-catalog", help="Replay the node's own arrivals of the last --days, with their AI flags"),
    ] = False,
    days: Annotated[float, typer.Option(help="Days of arrivals (synthetic, or replayed)")] = 7.0,
    readers: Annotated[int, typer.Option(help="Readers reading at once")] = 4,
    evaluation: Annotated[
        Path | None,
        typer.Option(help="`dicomnode models evaluate` output (JSON): the model's sensitivity and specificity"),
    ] = None,
    sensitivity: Annotated[float, typer.Option(help="The model's sensitivity at its operating point")] = 0.9,
    specificity: Annotated[float, typer.Option(help="The model's specificity at its operating point")] = 0.9,
    prevalence: Annotated[float, typer.Option(help="Share of studies with a critical finding (synthetic)")] = 0.02,
    seed: Annotated[int, typer.Option(help="Seed of arrivals, read times and model output")] = 20261202,
    json_file: Annotated[Path | None, typer.Option("--json", help="Write the figures to this JSON file")] = None,
    plot: Annotated[Path | None, typer.Option(help="Write wait-time distributions to this PNG")] = None,
) -> None:
    """Simulate a reading room under first come first served, order class only, and the node's own scoring
    (with and without its maximum waits, read from the config's [worklist.scoring]); print the waits per policy.
    With no --arrivals: 40 studies an hour, 2% critical, the model at 0.9/0.9."""
    from pydantic import ValidationError

    from dicomnode.worklist.simulation.arrivals import ArrivalsError, from_csv, synthetic
    from dicomnode.worklist.simulation.arrivals import from_catalog as replay
    from dicomnode.worklist.simulation.run import run
    from dicomnode.worklist.simulation.scenario import Scenario

    settings = settings_from(config)
    scoring = settings.worklist.scoring
    if evaluation is not None:
        sensitivity, specificity = _operating_point(evaluation)
    if from_catalog and arrivals:
        fail("--from-catalog or --arrivals, not both", 2)
    try:
        scenario = Scenario.model_validate(
            {
                "arrivals": {"days": days, "prevalence": prevalence},
                "room": {"readers": readers},
                "detector": {"sensitivity": sensitivity, "specificity": specificity},
                "seed": seed,
            }
        )
        if from_catalog:
            from dicomnode.catalog.db import utcnow

            with catalog_of(settings).connect() as conn:
                stream = replay(conn, scenario, days, utcnow())
        else:
            stream = from_csv(arrivals, scenario) if arrivals else synthetic(scenario)
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()), 2)
    except ArrivalsError as exc:
        fail(f"{arrivals or 'catalog'}: {exc}", 2)
    except OSError as exc:
        fail(f"cannot read {arrivals}: {exc.strerror}", 2)
    result = run(stream, scenario, scoring, plot_to=plot)
    if json_file:
        json_file.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    _print(result)


def _operating_point(path: Path) -> tuple[float, float]:
    """Sensitivity and specificity from the first JSON object of `models evaluate` output."""
    try:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip().startswith("{"):
                figures = json.loads(line)
                return float(figures["sensitivity"]), float(figures["specificity"])
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", 2)
    except (ValueError, KeyError, TypeError):
        pass
    fail(f"{path}: no `models evaluate` figures (a JSON line with sensitivity and specificity)", 2)


COLUMNS = [
    Column("policy", lambda row: row[0]),
    Column("critical mean (min)", lambda row: row[1]["critical_mean_wait_min"]),
    Column("critical p95 (min)", lambda row: row[1]["critical_p95_wait_min"]),
    Column("routine mean (min)", lambda row: row[1]["routine_mean_wait_min"]),
    Column("routine max (min)", lambda row: row[1]["routine_max_wait_min"]),
    Column("routine past bound", lambda row: _share(row[1]["routine_past_bound_share"])),
]


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _print(result: dict) -> None:
    typer.echo(f"{result['studies']} studies over {result['days']} days, offered load {result['offered_load']}")
    emit(list(result["policies"].items()), COLUMNS)
    c = result["comparison"]
    cut, growth = c.get("critical_mean_wait_cut_vs_fifo"), c.get("routine_max_wait_growth_vs_fifo")
    if cut is not None and growth is not None:
        typer.echo(
            f"dicomnode vs first come first served: critical mean wait {cut:.0%} shorter, longest routine wait "
            f"{growth:+.0%}"
        )
