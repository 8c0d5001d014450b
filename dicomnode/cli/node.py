"""Running things: the node itself, an analysis worker, the demo."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from dicomnode.cli.render import ConfigOption, fail, settings_from

log = logging.getLogger("dicomnode")
# Storage, catalog and results hold patient data: files 0640, folders 0750, whatever the caller's umask.
PRIVATE_UMASK = 0o027


def serve(config: ConfigOption = None) -> None:
    """Run the node: DICOM listener, catalog, study assembly, analysis, exports, worklist and HTTP API."""
    from dicomnode.errors import DicomnodeError
    from dicomnode.node import Node
    from dicomnode.ops.logs import setup_logging

    settings = settings_from(config)
    setup_logging(settings.log.level, settings.log.format)
    os.umask(PRIVATE_UMASK)
    try:
        node = Node(settings)
        node.start()
    except (OSError, DicomnodeError) as exc:
        log.error("cannot start: %s", exc)
        raise typer.Exit(1) from None

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        node.stop()

    def _reload(signum: int, _frame: object) -> None:
        try:
            node.reload_tokens(settings_from(config))
        except (Exception, SystemExit) as exc:  # a bad edit must not stop a running node
            log.error("signal SIGHUP: configuration not reloaded, current tokens kept (%s)", type(exc).__name__)

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGHUP, _reload)
    node.wait()
    # Everything is durable and every stage has stopped; the interpreter's own teardown (torch and the other
    # native libraries) would hold the process for seconds more, so a service manager waits on nothing.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def worker(
    config: ConfigOption = None,
    gpu: Annotated[int | None, typer.Option(help="GPU index for this worker (sets CUDA_VISIBLE_DEVICES)")] = None,
    queues: Annotated[str | None, typer.Option(help="Model families to serve, comma-separated; default all")] = None,
    pool: Annotated[str, typer.Option(help="solo (one process) or prefork (one child, model loaded there)")] = "solo",
    threads: Annotated[int | None, typer.Option(help="CPU threads for torch in this worker")] = None,
    name: Annotated[str | None, typer.Option(help="Worker node name; default dicomnode-<gpu|cpu>@host")] = None,
) -> None:
    """Run one Celery analysis worker process (one per GPU): `python -m workers` with these options."""
    settings = settings_from(config)
    if not settings.analysis.broker_url:
        fail(
            "analysis.broker_url is not set (DICOMNODE_ANALYSIS__BROKER_URL); "
            "without a broker `dicomnode serve` runs the analysis itself",
            2,
        )
    if pool not in ("solo", "prefork"):
        fail("--pool must be solo or prefork", 2)
    options = {
        "--config": config,
        "--gpu": gpu,
        "--queues": queues,
        "--pool": pool,
        "--threads": threads,
        "--name": name,
    }
    argv = [part for flag, value in options.items() if value is not None for part in (flag, str(value))]
    os.umask(PRIVATE_UMASK)  # kept across exec
    os.execv(sys.executable, [sys.executable, "-m", "workers", *argv])  # the node never imports workers


def demo(
    workdir: Annotated[Path, typer.Option(help="Emptied and used for the demo's node, PACS and studies")] = Path(
        "var/demo"
    ),
    keep: Annotated[
        bool, typer.Option("--keep", help="Keep running afterwards to look at the web worklist", metavar="")
    ] = False,
    http_port: Annotated[int, typer.Option(help="Web worklist port (0: any free port)")] = 0,
) -> None:
    """Push synthetic studies (CT heads, chest X-rays, routine and acute) to a node with dcmtk, and show the SR/SEG
    reaching a PACS stand-in and the worklist reordered."""
    from dicomnode.demo.run import DemoError, run_demo

    try:
        run_demo(workdir.resolve(), typer.echo, keep_running=keep, http_port=http_port)
    except DemoError as exc:
        fail(str(exc))
