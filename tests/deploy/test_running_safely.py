"""A deployed node is safe by default: its health answers at the configured port, the patient data it writes is
private to its user, and the demo leaves no process behind whatever signal ends it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.support.dicom_files import series
from tests.support.helpers import CHILD_ENV, NODE_AE, dicomnode_cli, run_dcmtk, wait_for


def test_health_command_asks_the_configured_port(node) -> None:  # noqa: ANN001
    config = node.workdir / "dicomnode.toml"
    healthy = subprocess.run(
        [sys.executable, "-m", "dicomnode", "health"],
        env={**CHILD_ENV, "DICOMNODE_CONFIG": str(config)},  # as the image's HEALTHCHECK finds it
        capture_output=True,
        text=True,
        check=False,
    )
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert json.loads(healthy.stdout)["status"] == "ok"
    node.stop()
    down = dicomnode_cli("health", "--config", str(config))
    assert down.returncode == 1 and "no answer from http://127.0.0.1:" in down.stderr


def test_patient_data_is_written_0640_in_folders_0750(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    old = os.umask(0o022)  # a permissive caller: the node must not inherit it
    try:
        node = start_node()
    finally:
        os.umask(old)
    _, files = series(tmp_path, 2)
    r = run_dcmtk("storescu", "-aec", NODE_AE, "127.0.0.1", str(node.port), *map(str, files))
    assert r.returncode == 0, r.stderr
    stored = sorted(node.storage.rglob("*.dcm"))
    assert len(stored) == 2
    for path in stored:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
        for folder in (path.parent, path.parent.parent):
            assert stat.S_IMODE(folder.stat().st_mode) == 0o750, folder
    catalog = Path(node.catalog_url.removeprefix("sqlite:///"))
    assert stat.S_IMODE(catalog.stat().st_mode) & 0o007 == 0, "the catalog is readable by others"


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"  # exited, waiting for its (dead) parent's reaper


def _demo_running(tmp_path: Path) -> tuple[subprocess.Popen, list[int]]:
    demo = subprocess.Popen(
        [sys.executable, "-m", "dicomnode", "demo", "--workdir", str(tmp_path / "demo")],
        env={**CHILD_ENV, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert demo.stdout is not None
    for line in demo.stdout:  # the node and the PACS stand-in are up once the demo says so
        if "are running in" in line:
            break
    children = wait_for(lambda: [c for c in _children(demo.pid) if not _gone(c)] or None)
    assert len(children) == 2, children
    return demo, children


def test_the_demo_stops_its_children_on_sigterm_and_even_sigkill(tmp_path: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        demo, children = _demo_running(tmp_path / sig.name)
        demo.send_signal(sig)
        demo.wait(timeout=60)
        deadline = time.monotonic() + 60
        while not all(_gone(c) for c in children) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(c) for c in children), f"{sig.name}: children left running"
