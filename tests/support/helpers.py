"""Test harness: a real `dicomnode serve` subprocess, real dcmtk peers, a pynetdicom SCU."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE, _config
from pynetdicom.association import Association

# Send test files byte for byte as written, broken ones included (no re-encoding).
_config.STORE_SEND_CHUNKED_DATASET = True
NODE_AE = "DICOMNODE"
READERS = [{"name": "dr-ada", "token": "ada-secret-token-0001"}, {"name": "dr-bob", "token": "bob-secret-token-0002"}]
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}
REPO_ROOT = Path(__file__).resolve().parents[2]
# Subprocesses import test model plugins (tests.support.plugin_models) like a user's own package.
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}


def require_tool(name: str) -> str:
    """Path of a system tool the test needs; a missing tool fails the test (never skips)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is required (install it: scripts/system-deps.sh); `make test` does this")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def write_config(path: Path, sections: dict[str, dict[str, Any]]) -> Path:
    lines = []
    for section, keys in sections.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in keys.items())
        lines.append("")
    path.write_text("\n".join(lines))
    return path


@dataclass
class NodeProcess:
    """A running `dicomnode serve`; its stderr goes to a log file the test can read."""

    workdir: Path
    sections: dict[str, dict[str, Any]]
    preexec: Callable[[], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workdir / "node.log"

    @property
    def port(self) -> int:
        return int(self.sections["dicom"]["port"])

    @property
    def storage(self) -> Path:
        return Path(self.sections["storage"]["path"])

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.sections['http']['port']}"

    @property
    def catalog_url(self) -> str:
        return self.sections["catalog"]["url"]

    def start(self, timeout: float = 60) -> NodeProcess:  # an upper bound on a state, for loaded machines
        config = write_config(self.workdir / "dicomnode.toml", self.sections)
        started_at = len(self.log())
        log = open(self.log_path, "ab")  # noqa: SIM115 - the child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dicomnode", "serve", "--config", str(config)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=self.preexec,
            env={**CHILD_ENV, **self.env},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node exited with {self.proc.returncode}:\n{self.log()}")
            if "listening ae=" in self.log()[started_at:]:  # this run's line, not a previous run's
                return self
            time.sleep(0.05)
        raise RuntimeError(f"node did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def associate(self, contexts: list[Any], calling_ae: str = "TESTSCU", **kwargs: Any) -> Association:
        ae = AE(ae_title=calling_ae)
        ae.requested_contexts = contexts
        return ae.associate("127.0.0.1", self.port, ae_title=kwargs.pop("called_ae", NODE_AE), **kwargs)


def node_sections(workdir: Path, **overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {
        # One receiver process unless a test asks for more (tests/dicom/test_receivers.py): the suite's tests
        # read the node's own counters and memory, which several receivers would spread over processes.
        "dicom": {"ae_title": NODE_AE, "host": "127.0.0.1", "port": free_port(), "receivers": 1},
        "storage": {"path": str(workdir / "storage"), "min_free_bytes": 0},
        "catalog": {"url": f"sqlite:///{workdir / 'catalog.sqlite'}"},
        "assembly": {"study_quiet_seconds": 2, "poll_seconds": 0.2},
        "routing": {"rules": []},  # ingest tests need no analysis; analysis tests set rules
        "http": {"host": "127.0.0.1", "port": free_port(), "tokens": READERS},
        "log": {"level": "DEBUG"},
    }
    for section, keys in overrides.items():
        sections.setdefault(section, {}).update(keys)
    return sections


def run_dcmtk(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    require_tool(args[0])
    return subprocess.run(list(args), env=DCMTK_ENV, capture_output=True, text=True, timeout=timeout, check=False)


def wait_for(predicate: Callable[[], Any], timeout: float = 15, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class PostgresCluster:
    """A throwaway PostgreSQL cluster (Debian package `postgresql`) on a free port."""

    def __init__(self, directory: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
        if not bins:
            pytest.fail("PostgreSQL is required (scripts/system-deps.sh postgresql); `make test` does this")
        self.bin = bins[-1]
        self.dir = directory
        self.port = free_port()
        self.dir.mkdir(parents=True, exist_ok=True)
        # initdb refuses to run as root; the Debian package provides the `postgres` user.
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")

    def _run(self, *args: str) -> None:
        r = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120, check=False)
        if r.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({r.returncode}): {r.stderr or r.stdout}")

    def start(self) -> str:
        data = str(self.dir / "data")
        self._run(str(self.bin / "initdb"), "-D", data, "-A", "trust", "-U", "postgres")
        opts = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(str(self.bin / "pg_ctl"), "-D", data, "-o", opts, "-l", str(self.dir / "pg.log"), "-w", "start")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")


def storescu(node: NodeProcess, files: list[Path], *options: str) -> subprocess.CompletedProcess:
    """dcmtk storescu, as a scanner would push, to the node (one association)."""
    return run_dcmtk("storescu", *options, "-aec", NODE_AE, "127.0.0.1", str(node.port), *map(str, files))


def dicomnode_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`python -m dicomnode ARGS` as a user runs it (test model plugins importable); 300 s guards a hang only."""
    command = [sys.executable, "-m", "dicomnode", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=CHILD_ENV, check=False, cwd=cwd)


def node_cli(node: NodeProcess, *args: str) -> subprocess.CompletedProcess:
    """A `dicomnode` command against a running test node's configuration."""
    return dicomnode_cli(*args, "--config", str(node.workdir / "dicomnode.toml"))


def node_rss_mb(node: NodeProcess) -> float:
    """The resident memory of a running node, in MiB."""
    assert node.proc is not None
    for line in Path(f"/proc/{node.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc")
