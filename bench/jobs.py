"""Analysis pipeline benchmark: job throughput on a backlog, and queue overhead per job.

A backlog of N completed CT studies (pending jobs for the stand-in model) is
put into a fresh catalog, then drained by:
  direct       run_job() called in a loop in this process: no queue at all (the peer)
  embedded     `dicomnode serve` with no broker: its in-process worker thread
  redis-1      `dicomnode serve` publishing to a real redis-server, one `dicomnode worker`
  redis-2      the same with two worker processes
Throughput is steady-state jobs/s (after each worker's first job, which loads torch and the
model). Every worker uses one torch thread, so 1 vs 2 processes measures the queue's parallelism.

Queue overhead: on the idle, warm system, single jobs are created one at a time; the overhead is
the time from publication (enqueued_at) to a worker's claim (started_at), from the catalog.

Usage: python bench/jobs.py [--studies 50] [--slices 64] [--size 256] [--probes 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

from pynetdicom.dsutils import split_dataset
from sqlalchemy import Engine, select

from dicomnode.assembly.completion import complete_quiet_studies
from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Job
from dicomnode.config.settings import load_settings
from dicomnode.demo.synthetic import SeriesSpec, write_ct_series
from dicomnode.receive.ingest import Ingest, StoreRequest
from dicomnode.receive.storage import Storage
from dicomnode.routing.router import Router

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_port, stop  # noqa: E402 - the sibling benchmark script

OUT = Path(__file__).resolve().parent / "out"
_jobs = Job.__table__


def write_config(work: Path, broker_url: str | None) -> Path:
    lines = [
        "[dicom]",
        'host = "127.0.0.1"',
        f"port = {free_port()}",
        "[storage]",
        f'path = "{work / "storage"}"',
        "min_free_bytes = 0",
        "[catalog]",
        f'url = "sqlite:///{work / "catalog.sqlite"}"',
        "[assembly]",
        "study_quiet_seconds = 86400",  # this script completes studies itself
        "[analysis]",
        "torch_threads = 1",
        'device = "cpu"',
        *([f'broker_url = "{broker_url}"'] if broker_url else []),
        "[[routing.rules]]",
        'name = "ct"',
        'models = ["standin-hyperdense"]',
        "[routing.rules.match]",
        'modality = ["CT"]',
        "[log]",
        'level = "INFO"',  # workers say " ready." at INFO
    ]
    path = work / "dicomnode.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Backlog:
    """Stores synthetic studies through the real ingest path and completes them through the real routing."""

    def __init__(self, config: Path, source: list[list[Path]]) -> None:
        self.settings = load_settings(config)
        self.catalog = open_catalog(self.settings.catalog.url)
        self.ingest = Ingest(Storage(self.settings.storage.path), self.catalog, "keep_first", 1 << 32)
        registry = self.settings.registry
        self.hook = Router(self.settings.routing.rules, registry, lambda: None)
        self.source = source
        self.used = 0

    def add(self, count: int) -> None:
        for files in self.source[self.used : self.used + count]:
            for path in files:
                _, offset = split_dataset(path)
                raw = path.read_bytes()
                meta = _meta_of(path)
                self.ingest.store(
                    StoreRequest(meta[0], meta[1], meta[2], "BENCH", "DICOMNODE", "127.0.0.1", raw[offset:])
                )
        self.used += count
        complete_quiet_studies(self.catalog, self.hook, quiet_seconds=0)


def _meta_of(path: Path) -> tuple[str, str, str]:
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    return meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, meta.TransferSyntaxUID


def job_rows(catalog: Engine) -> list:
    with catalog.connect() as conn:
        return conn.execute(select(_jobs).order_by(_jobs.c.id)).all()


def wait_done(catalog: Engine, count: int, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = job_rows(catalog)
        if len(rows) >= count and all(r.state in ("done", "failed") for r in rows):
            failed = [r for r in rows if r.state == "failed"]
            if failed:
                raise RuntimeError(f"{len(failed)} jobs failed: {failed[0].last_error}")
            return rows
        time.sleep(0.05)
    raise RuntimeError(f"jobs not done within {timeout}s")


def steady_rate(rows: list, processes: int) -> float:
    """Jobs/s after each process's first job (torch import and model load are start-up, not throughput)."""
    finished = sorted(r.finished_at for r in rows)
    skip = min(processes, len(finished) - 1)
    t0 = finished[skip - 1] if skip else min(r.started_at for r in rows)
    span = (finished[-1] - t0).total_seconds()
    return (len(finished) - skip) / span if span > 0 else float("inf")


@contextmanager
def process(argv: list[str], log: Path, ready: str | None = None, env: dict | None = None) -> Iterator[None]:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 60
        while ready and ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[2:5]} did not start:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        yield
    finally:
        stop(proc)


@contextmanager
def redis_server(work: Path) -> Iterator[str]:
    port = free_port()
    argv = [
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--maxmemory-policy",
        "noeviction",
    ]
    with process(argv, work / "redis.log", ready="Ready to accept connections"):
        yield f"redis://127.0.0.1:{port}/0"


def dicomnode(*args: str) -> list[str]:
    return [sys.executable, "-m", "dicomnode", *args]


def run_direct(work: Path, source: list[list[Path]]) -> dict:
    """The peer: the same task body in a loop, in a fresh process like the node's and the workers'."""
    config = write_config(work, None)
    backlog = Backlog(config, source)
    backlog.add(len(source))
    subprocess.run([sys.executable, __file__, "--direct", str(config)], check=True)
    return {"jobs_per_s": steady_rate(job_rows(backlog.catalog), 1), "queue_overhead_ms": 0.0}


def drain_directly(config: Path) -> None:
    from workers.runtime import Runtime
    from workers.task import run_job

    rt = Runtime(load_settings(config))
    for row in job_rows(rt.catalog):
        if run_job(rt, row.id) != "done":
            raise RuntimeError(f"job {row.id} did not complete")


def run_queued(work: Path, source: list[list[Path]], probes: int, workers: int | None) -> dict:
    """workers=None: embedded mode; else that many `dicomnode worker` processes on Redis."""
    with nullcontext(None) if workers is None else redis_server(work) as broker:
        config = write_config(work, broker)
        backlog = Backlog(config, source)
        backlog.add(len(source) - probes)
        with (
            _workers(config, work, workers or 0),
            process(dicomnode("serve", "--config", str(config)), work / "node.log", ready=None),
        ):
            rows = wait_done(backlog.catalog, len(source) - probes, timeout=1800)
            rate = steady_rate(rows, workers or 1)
            overheads = []
            for _ in range(probes):  # one job at a time on the idle system
                backlog.add(1)
                rows = wait_done(backlog.catalog, backlog.used, timeout=120)
                last = max(rows, key=lambda r: r.id)
                overheads.append((last.started_at - last.enqueued_at).total_seconds() * 1000)
    return {"jobs_per_s": rate, "queue_overhead_ms": statistics.median(overheads) if overheads else None}


@contextmanager
def _workers(config: Path, work: Path, count: int) -> Iterator[None]:
    if count == 0:
        yield
        return
    with process(
        dicomnode("worker", "--config", str(config), "--name", f"w{count}a@%h"), work / "w1.log", ready=" ready."
    ):
        if count == 1:
            yield
            return
        with process(
            dicomnode("worker", "--config", str(config), "--name", f"w{count}b@%h"), work / "w2.log", ready=" ready."
        ):
            yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=50, help="backlog size")
    parser.add_argument("--slices", type=int, default=64)
    parser.add_argument("--size", type=int, default=256, help="rows and columns")
    parser.add_argument("--probes", type=int, default=15, help="single jobs timed for queue overhead")
    parser.add_argument("--json", type=Path, default=OUT / "jobs.json")
    parser.add_argument("--direct", type=Path, help=argparse.SUPPRESS)  # internal: drain one backlog in-process
    args = parser.parse_args()
    if args.direct:
        drain_directly(args.direct)
        return
    if not shutil.which("redis-server"):
        sys.exit("redis-server is required (scripts/system-deps.sh redis-server)")

    root = Path(tempfile.mkdtemp(prefix="dicomnode-bench-jobs-"))
    try:
        total = args.studies + args.probes
        source = [
            write_ct_series(
                SeriesSpec(
                    n_slices=args.slices,
                    rows=args.size,
                    columns=args.size,
                    seed=i,
                    lesion_hu=80 if i % 3 == 0 else None,
                ),
                root / "src" / str(i),
            )
            for i in range(total)
        ]
        os.sync()  # the generated files are on disk before anything is timed
        results: dict = {"studies": args.studies, "slices": args.slices, "size": args.size, "probes": args.probes}
        scenarios = {
            "direct": lambda w: run_direct(w, source[: args.studies]),
            "embedded": lambda w: run_queued(w, source, args.probes, None),
            "redis-1": lambda w: run_queued(w, source, args.probes, 1),
            "redis-2": lambda w: run_queued(w, source, args.probes, 2),
        }
        for name, run in scenarios.items():
            work = root / name
            work.mkdir()
            results[name] = run(work)
            print(f"{name:>9}: {results[name]['jobs_per_s']:6.2f} jobs/s", file=sys.stderr)
        base = results["direct"]["jobs_per_s"]
        for name in scenarios:
            results[name]["vs_direct"] = round(results[name]["jobs_per_s"] / base, 3)
        results["redis_2_vs_1"] = round(results["redis-2"]["jobs_per_s"] / results["redis-1"]["jobs_per_s"], 3)
        report(results, list(scenarios))
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def report(results: dict, names: list[str]) -> None:
    print(
        f"\nbacklog of {results['studies']} CT studies, {results['slices']} x {results['size']}^2, stand-in model, "
        f"1 torch thread per worker; {os.cpu_count()} cores"
    )
    print(f"{'mode':>9} {'jobs/s':>8} {'vs direct':>10} {'enqueue->start (median ms)':>28}")
    for name in names:
        r = results[name]
        overhead = "-" if r["queue_overhead_ms"] is None else f"{r['queue_overhead_ms']:.1f}"
        print(f"{name:>9} {r['jobs_per_s']:8.2f} {r['vs_direct']:10.2f} {overhead:>28}")
    print(f"2 workers vs 1: {results['redis_2_vs_1']:.2f}x")


if __name__ == "__main__":
    main()
