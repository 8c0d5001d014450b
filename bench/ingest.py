"""Ingest benchmark: one 300-slice 512x512 CT series sent by dcmtk storescu over one association.

Receivers, alternating, a warm-up then N timed runs each, every run into an empty store:
  dicomnode  `dicomnode serve`, fully durable (fsync file + directory, catalog commit), dicom.receivers at its
             default (one receiver process per core)
  storescp   dcmtk `storescp -od DIR` (no fsync, no index): the reference
  pynetdicom-durable  bare pynetdicom SCP, raw bytes, same durable write, no checks or catalog
  orthanc    Orthanc with its SQLite index, when installed
Prints medians, instances/s, MB/s and the ratio to storescp. Then concurrency: --senders storescu processes
(default 4) sending different studies at once to `storescp --fork`, dicomnode (default receivers, and one
receiver), and Orthanc (ratio to the fork). Then memory: one --large-mb instance (default 1536 MiB) sent to
dicomnode and to the bare pynetdicom receiver, the largest rise of one process's peak resident memory above its
idle level (a node's receiver processes included). Writes bench/out/ingest.json.

Usage: python bench/ingest.py [--runs 5] [--slices 300] [--senders 4] [--large-mb 1536]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from dicomnode.demo.synthetic import SeriesSpec, write_ct_series

OUT = Path(__file__).resolve().parent / "out"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"receiver exited early ({proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("receiver did not open its port")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@dataclass(frozen=True)
class Launch:
    """How to start one receiver: its AE title, command line and environment."""

    ae_title: str
    argv: list[str]
    env: dict[str, str] | None = None
    ready_line: str | None = None  # wait for this on its stderr too (the port opens before it is ready)


def dicomnode_receiver(work: Path, port: int, receivers: int = 0) -> Launch:
    env = {
        **os.environ,
        "DICOMNODE_DICOM__PORT": str(port),
        "DICOMNODE_DICOM__HOST": "127.0.0.1",
        "DICOMNODE_STORAGE__PATH": str(work / "storage"),
        "DICOMNODE_STORAGE__MIN_FREE_BYTES": "0",
        "DICOMNODE_CATALOG__URL": f"sqlite:///{work / 'catalog.sqlite'}",
        "DICOMNODE_ASSEMBLY__STUDY_QUIET_SECONDS": "3600",
        "DICOMNODE_DICOM__RECEIVERS": str(receivers),
        "DICOMNODE_HTTP__ENABLED": "false",
        "DICOMNODE_LOG__LEVEL": "INFO",
    }
    return Launch("DICOMNODE", [sys.executable, "-m", "dicomnode", "serve"], env, ready_line="listening ae=")


def dicomnode_one_receiver(work: Path, port: int) -> Launch:
    return dicomnode_receiver(work, port, receivers=1)


def storescp_receiver(work: Path, port: int) -> Launch:
    (work / "in").mkdir()
    return Launch("STORESCP", ["storescp", "-od", str(work / "in"), str(port)], DCMTK_ENV)


def pynetdicom_durable_receiver(work: Path, port: int) -> Launch:
    script = Path(__file__).resolve().parent / "peers" / "pynetdicom_durable.py"
    return Launch("BAREPYND", [sys.executable, str(script), str(port), str(work / "in")])


def orthanc_receiver(work: Path, port: int) -> Launch:
    cfg = work / "orthanc.json"
    cfg.write_text(
        json.dumps(
            {
                "Name": "bench",
                "StorageDirectory": str(work / "db"),
                "IndexDirectory": str(work / "db"),
                "DicomAet": "ORTHANC",
                "DicomPort": port,
                "HttpPort": free_port(),
                "RemoteAccessAllowed": False,
                "DicomCheckCalledAet": False,
                "Plugins": [],
                "StorageCompression": False,
            }
        )
    )
    # Orthanc is built on dcmtk: without TCP_NODELAY it stalls ~40 ms per instance on delayed ACK.
    return Launch("ORTHANC", ["Orthanc", str(cfg)], DCMTK_ENV)


Receiver = Callable[[Path, int], Launch]


def start(launch: Launch, work: Path, port: int) -> subprocess.Popen:
    """The receiver, once its port is open and (if it says when) it is ready."""
    log = work / "receiver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(launch.argv, env=launch.env, cwd=work, stdout=subprocess.DEVNULL, stderr=out)
    wait_port(port, proc)
    deadline = time.monotonic() + 120
    while launch.ready_line and launch.ready_line not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"receiver not ready:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.05)
    return proc


@contextmanager
def running(receiver: Receiver, work: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    launch = receiver(work, port)
    proc = start(launch, work, port)
    try:
        yield launch.ae_title, port
    except RuntimeError as exc:
        log = (work / "receiver.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{launch.ae_title}: {exc}\n--- its log:\n{log}") from None
    finally:
        stop(proc)


def storescu(aet: str, port: int, files: list[Path]) -> None:
    """dcmtk storescu sends `files` over one association; RuntimeError if it fails."""
    r = subprocess.run(
        ["storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
        env=DCMTK_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    if r.returncode != 0:
        raise RuntimeError(f"storescu failed: {r.stderr[-2000:]}")


def send_once(receiver: Receiver, files: list[Path]) -> float:
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
    try:
        with running(receiver, work) as (aet, port):
            start = time.perf_counter()
            storescu(aet, port, files)
            return time.perf_counter() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


def large_instance(n_bytes: int) -> Path:
    """One CT instance whose Pixel Data is `n_bytes` of zeros (written once, in 64 MiB pieces)."""
    path = OUT / f"large-{n_bytes // 1024**2}MiB.dcm"
    if path.is_file():
        return path
    template = series(1)[0].read_bytes()
    at = template.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data, explicit VR little endian
    with path.open("wb") as f:
        f.write(template[:at] + b"\xe0\x7f\x10\x00OW\x00\x00" + n_bytes.to_bytes(4, "little"))
        piece = bytes(64 * 1024**2)
        for start in range(0, n_bytes, len(piece)):
            f.write(piece[: min(len(piece), n_bytes - start)])
    return path


def _memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def _peak_reset(pid: int) -> int:
    """The process's resident memory (KiB), its peak (VmHWM) reset to it, so that the peak start-up left behind
    (the node loading its models: 40 MB above idle) is not counted as the instance's; where the kernel refuses the
    reset, the peak so far (only a rise above it counts)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return _memory_kib(pid, "VmHWM")
    return _memory_kib(pid, "VmRSS")


def _process_tree(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [pid, *(p for child in children for p in _process_tree(int(child)))]


def rss_growth_mb(receiver: Receiver, path: Path) -> float:
    """How far one process's peak resident memory rises above its idle level while the receiver (any of its
    processes) receives `path`."""
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
    port = free_port()
    launch = receiver(work, port)
    proc = start(launch, work, port)
    try:
        idle = {pid: _peak_reset(pid) for pid in _process_tree(proc.pid)}
        storescu(launch.ae_title, port, [path])
        return max(_memory_kib(pid, "VmHWM") - rss for pid, rss in idle.items()) / 1024
    finally:
        stop(proc)
        shutil.rmtree(work, ignore_errors=True)


def storescp_fork_receiver(work: Path, port: int) -> Launch:
    (work / "in").mkdir()
    return Launch("STORESCP", ["storescp", "--fork", "-od", str(work / "in"), str(port)], DCMTK_ENV)


def send_concurrently(receiver: Receiver, studies: list[list[Path]]) -> float:
    """Wall time for one storescu per study, all started at once, each over its own association."""
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=OUT))
    try:
        with running(receiver, work) as (aet, port):
            start = time.perf_counter()
            senders = [
                subprocess.Popen(
                    ["storescu", "-aec", aet, "127.0.0.1", str(port), *map(str, files)],
                    env=DCMTK_ENV,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
                for files in studies
            ]
            failed = [p.communicate()[1][-2000:] for p in senders if p.wait() != 0]
            elapsed = time.perf_counter() - start
            if failed:
                raise RuntimeError(f"storescu failed: {failed[0]!r}")
        return elapsed
    finally:
        shutil.rmtree(work, ignore_errors=True)


def series(n_slices: int, name: str = "") -> list[Path]:
    directory = OUT / f"ct-{n_slices}x512x512{name}"
    files = sorted(directory.glob("*.dcm")) if directory.is_dir() else []
    if len(files) != n_slices:
        shutil.rmtree(directory, ignore_errors=True)
        files = write_ct_series(SeriesSpec(n_slices=n_slices, rows=512, columns=512), directory)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--json", type=Path, default=OUT / "ingest.json", help="where to write the results")
    parser.add_argument("--senders", type=int, default=4, help="studies sent at once in the concurrency run (0: skip)")
    parser.add_argument("--large-mb", type=int, default=1536, help="size of the one large instance (0: skip)")
    args = parser.parse_args()
    for tool in ("storescu", "storescp"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} missing: run scripts/system-deps.sh dcmtk")
    OUT.mkdir(exist_ok=True)
    files = series(args.slices)
    total_mb = sum(f.stat().st_size for f in files) / 1e6
    receivers: dict[str, Receiver] = {
        "storescp": storescp_receiver,
        "pynetdicom-durable": pynetdicom_durable_receiver,
        "dicomnode": dicomnode_receiver,
    }
    if shutil.which("Orthanc"):
        receivers["orthanc"] = orthanc_receiver
    times: dict[str, list[float]] = {name: [] for name in receivers}
    for receiver in receivers.values():
        send_once(receiver, files)  # warm-up: page cache, imports
    for _ in range(args.runs):
        for name, receiver in receivers.items():
            times[name].append(send_once(receiver, files))

    print(
        f"\n{len(files)} instances, {total_mb:.1f} MB, storescu, one association, TCP_NODELAY=1, median of {args.runs}"
    )
    base = statistics.median(times["storescp"])
    results = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        results[name] = {
            "median_s": round(med, 3),
            "runs_s": [round(t, 3) for t in ts],
            "instances_per_s": round(len(files) / med, 1),
            "mb_per_s": round(total_mb / med, 1),
            "vs_storescp": round(med / base, 2),
        }
        r = results[name]
        print(
            f"  {name:18s} {med:6.2f} s  {r['instances_per_s']:7.1f} inst/s  {r['mb_per_s']:6.1f} MB/s  "
            f"x{r['vs_storescp']:.2f} vs storescp"
        )
    concurrent: dict[str, dict[str, float]] = {}
    if args.senders:
        studies = [files] + [series(args.slices, f"-{i}") for i in range(1, args.senders)]
        peers: dict[str, Receiver] = {
            "storescp --fork": storescp_fork_receiver,
            "dicomnode": dicomnode_receiver,
            "dicomnode, 1 receiver": dicomnode_one_receiver,
        }
        if shutil.which("Orthanc"):
            peers["orthanc"] = orthanc_receiver
        walls: dict[str, list[float]] = {name: [] for name in peers}
        for _ in range(args.runs):
            for name, receiver in peers.items():
                walls[name].append(send_concurrently(receiver, studies))
        print(f"\n{args.senders} storescu at once, {args.senders} different studies of {len(files)} instances")
        fork = statistics.median(walls["storescp --fork"])
        for name, ts in walls.items():
            med = statistics.median(ts)
            concurrent[name] = {
                "median_s": round(med, 3),
                "mb_per_s": round(args.senders * total_mb / med, 1),
                "vs_storescp_fork": round(med / fork, 2),
            }
            print(f"  {name:22s} {med:6.2f} s  {concurrent[name]['mb_per_s']:6.1f} MB/s  x{med / fork:.2f} vs fork")
    memory = {}
    if args.large_mb:
        large = large_instance(args.large_mb * 1024**2)
        print(f"\none instance of {args.large_mb} MiB: peak resident memory above idle while receiving it")
        for name, receiver in (("dicomnode", dicomnode_receiver), ("pynetdicom-durable", pynetdicom_durable_receiver)):
            memory[name] = round(rss_growth_mb(receiver, large), 1)
            print(f"  {name:18s} +{memory[name]:8.1f} MB (target for dicomnode: < 300 MB)")
    args.json.write_text(
        json.dumps(
            {
                "instances": len(files),
                "mb": total_mb,
                **results,
                "concurrent": concurrent,
                "large_instance_rss_growth_mb": memory,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
