"""The command line against a running node."""

from __future__ import annotations

from pathlib import Path

from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, dicomnode_cli, storescu, wait_for


def test_echo(node) -> None:  # noqa: ANN001
    r = dicomnode_cli("echo", "127.0.0.1", str(node.port), "--aet", NODE_AE)
    assert r.returncode == 0 and "status 0x0000" in r.stdout
    wrong = dicomnode_cli("echo", "127.0.0.1", str(node.port), "--aet", "NOT_THE_NODE")
    assert wrong.returncode == 1 and "rejected" in wrong.stderr


def test_echo_to_nobody_is_a_clear_error() -> None:
    from tests.support.helpers import free_port

    r = dicomnode_cli("echo", "127.0.0.1", str(free_port()))
    assert r.returncode == 1 and "echo failed" in r.stderr


def test_send_with_a_malformed_destination() -> None:
    r = dicomnode_cli("send", "x.dcm", "--to", "localhost:104")
    assert r.returncode == 2 and "AE@HOST:PORT" in r.stderr


def test_studies_lists_what_was_received(node, tmp_path: Path) -> None:  # noqa: ANN001
    spec, files = series(tmp_path, 3, priority="STAT")
    assert storescu(node, files).returncode == 0
    config = node.workdir / "dicomnode.toml"

    def listed() -> str | None:
        out = dicomnode_cli("studies", "--config", str(config)).stdout
        return out if "complete" in out else None

    out = wait_for(listed, timeout=10)
    row = next(line for line in out.splitlines() if spec.study_uid in line)
    assert "CT" in row and "STAT" in row and " 3 " in row


def test_models_list_and_train_refusal(tmp_path: Path) -> None:
    listed = dicomnode_cli("models", "list", cwd=tmp_path)
    assert listed.returncode == 0
    assert "ct-hemorrhage" in listed.stdout and "standin-hyperdense" in listed.stdout
    refused = dicomnode_cli("models", "train", "standin-hyperdense", cwd=tmp_path)
    assert refused.returncode == 2 and "has no built-in training" in refused.stderr
    unknown = dicomnode_cli("models", "train", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "unknown model 'nope'" in unknown.stderr
