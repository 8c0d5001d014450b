"""The Celery command line of one analysis worker: `python -m workers [options]`, run by `dicomnode worker`.

Sets the worker's environment (its model families, the GPU it may see, torch threads) before anything can
initialise CUDA, then becomes `celery -A workers.worker worker` with the settings one worker per GPU needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from dicomnode.config.settings import ConfigError, load_settings
from dicomnode.jobs.lifecycle import queue_for
from workers.runtime import CONFIG_ENV, FAMILIES_ENV


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="TOML config file; DICOMNODE_* env vars override it")
    parser.add_argument("--gpu", type=int, help="GPU index for this worker (sets CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--queues", help="model families to serve, comma-separated; default all")
    parser.add_argument("--pool", choices=("solo", "prefork"), default="solo")
    parser.add_argument("--threads", type=int, help="CPU threads for torch in this worker")
    parser.add_argument("--name", help="worker node name; default dicomnode-<gpu|cpu>@host")
    return parser.parse_args(argv)


def celery_command(args: argparse.Namespace, families: list[str], log_level: str) -> list[str]:
    node_name = args.name or f"dicomnode-{'gpu' + str(args.gpu) if args.gpu is not None else 'cpu'}@%h"
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.worker",
        "worker",
        "--pool",
        args.pool,
        "--concurrency",
        "1",
        "--prefetch-multiplier",
        "1",
        "-Q",
        ",".join(queue_for(f) for f in families),
        "-n",
        node_name,
        "--loglevel",
        log_level,
        "--without-gossip",
        "--without-mingle",
    ]


def worker_environment(args: argparse.Namespace, families: list[str]) -> dict[str, str]:
    env = {**os.environ, FAMILIES_ENV: ",".join(families)}
    if args.config is not None:
        env[CONFIG_ENV] = str(args.config.resolve())
    if args.gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(args.gpu)  # set before anything can initialise CUDA
    if args.threads is not None:
        env["DICOMNODE_ANALYSIS__TORCH_THREADS"] = str(args.threads)
    return env


def main(argv: list[str]) -> None:
    args = parse(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    if not settings.analysis.broker_url:
        print(
            "error: analysis.broker_url is not set (DICOMNODE_ANALYSIS__BROKER_URL); without a broker "
            "`dicomnode serve` runs the analysis itself",
            file=sys.stderr,
        )
        raise SystemExit(2)
    families = [f.strip() for f in args.queues.split(",")] if args.queues else settings.registry.families()
    command = celery_command(args, families, settings.log.level)
    os.execve(sys.executable, command, worker_environment(args, families))


if __name__ == "__main__":
    main(sys.argv[1:])
