"""The command line against a running node."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, storescu, wait_for


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dicomnode", *args], capture_output=True, text=True, timeout=60, check=False, cwd=cwd
    )


def test_echo(node) -> None:  # noqa: ANN001
    r = cli("echo", "127.0.0.1", str(node.port), "--aet", NODE_AE)
    assert r.returncode == 0 and "status 0x0000" in r.stdout
    wrong = cli("echo", "127.0.0.1", str(node.port), "--aet", "NOT_THE_NODE")
    assert wrong.returncode == 1 and "rejected" in wrong.stderr


def test_echo_to_nobody_is_a_clear_error() -> None:
    from tests.support.helpers import free_port

    r = cli("echo", "127.0.0.1", str(free_port()))
    assert r.returncode == 1 and "echo failed" in r.stderr


def test_send_with_a_malformed_destination() -> None:
    r = cli("send", "x.dcm", "--to", "localhost:104")
    assert r.returncode == 2 and "AE@HOST:PORT" in r.stderr


def test_studies_lists_what_was_received(node, tmp_path: Path) -> None:  # noqa: ANN001
    spec, files = series(tmp_path, 3, priority="STAT")
    assert storescu(node, files).returncode == 0
    config = node.workdir / "dicomnode.toml"

    def listed() -> str | None:
        out = cli("studies", "--config", str(config)).stdout
        return out if "complete" in out else None

    out = wait_for(listed, timeout=10)
    row = next(line for line in out.splitlines() if spec.study_uid in line)
    assert "CT" in row and "STAT" in row and " 3 " in row


def test_models_list_and_train_refusal(tmp_path: Path) -> None:
    listed = cli("models", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "ct-hemorrhage" in listed.stdout and "standin-hyperdense" in listed.stdout
    refused = cli("models", "train", "standin-hyperdense", cwd=tmp_path)
    assert refused.returncode == 2 and "has no built-in training" in refused.stderr
    unknown = cli("models", "train", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown model 'nope'" in unknown.stderr
