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


def test_version_and_a_missing_catalog_says_which_config_was_read(tmp_path: Path) -> None:
    from dicomnode import __version__

    assert dicomnode_cli("--version").stdout.strip() == f"dicomnode {__version__}"
    r = dicomnode_cli("studies", cwd=tmp_path)
    assert r.returncode == 1 and "no catalog at var/catalog.sqlite" in r.stderr and "--config" in r.stderr
    assert not (tmp_path / "var").exists(), "a listing never creates an empty catalog"


def test_state_filters_take_only_known_states(node) -> None:  # noqa: ANN001
    config = str(node.workdir / "dicomnode.toml")
    refused = dicomnode_cli("jobs", "--state", "finished", "--config", config)
    assert refused.returncode == 2 and "'finished' is not one of" in refused.stderr
    empty = dicomnode_cli("exports", "--state", "dead", "--config", config)
    assert empty.returncode == 0 and "(nothing to list)" in empty.stderr


def test_send_to_a_dead_port_says_so_once(tmp_path: Path) -> None:
    from tests.support.helpers import free_port

    _, files = series(tmp_path, 4)
    r = dicomnode_cli("send", *map(str, files), "--to", f"NOBODY@127.0.0.1:{free_port()}")
    failed = [line for line in r.stderr.splitlines() if line.startswith("failed")]
    assert r.returncode == 1 and len(failed) == 1 and failed[0].startswith("failed 4 of 4"), r.stderr
    assert "sent 0 of 4" in r.stdout


def test_echo_names_the_rejection_reason(node) -> None:  # noqa: ANN001
    r = dicomnode_cli("echo", "127.0.0.1", str(node.port), "--aet", "NOT_THE_NODE")
    assert r.returncode == 1 and "called AE title not recognized (permanent)" in r.stderr
