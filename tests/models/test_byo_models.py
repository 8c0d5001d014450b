"""Bring your own model: export a tiny network, load it from a models directory, check it, run it in the node."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dicomnode.catalog.db import open_catalog
from models.image import ImageVolume, axial_affine
from models.manifest import weights_uid
from models.registry import ModelSpec, build_registry
from tests.support.byo import export_model
from tests.support.dicom_files import series
from tests.support.helpers import dicomnode_cli, storescu, write_config
from tests.support.pipeline import analysis_overrides, result_rows, rule, wait_jobs


def cube_volume() -> ImageVolume:
    hu = np.zeros((12, 40, 40), np.float32)
    hu[4:8, 10:20, 22:30] = 90.0
    return ImageVolume(hu, (2.0, 1.0, 1.0), axial_affine((2.0, 1.0, 1.0)), "1.2", "CT", ("",) * 12)


@pytest.mark.parametrize("fmt", ["pt2", "torchscript"])
def test_exported_model_round_trip(tmp_path: Path, fmt: str) -> None:
    folder = export_model(tmp_path / "models" / "bright", "bright", fmt)
    registry = build_registry(models_dir=tmp_path / "models")
    spec = registry.get("bright")
    assert spec.family == "ct" and spec.uid == weights_uid(spec.weights_path)
    [finding] = spec.load("cpu").predict(cube_volume())
    assert finding.bbox == (4, 10, 22, 8, 20, 30), "the cube, back on the volume's own grid"
    assert finding.label == "bright region" and finding.probability > 0.99 and finding.mask.all()
    assert finding.measurement("volume") == pytest.approx(4 * 10 * 8 * 2.0 / 1000)
    assert (folder / "manifest.toml").is_file()


def test_models_check_accepts_a_good_model_and_explains_each_bad_one(tmp_path: Path) -> None:
    good = export_model(tmp_path / "good", "good", "torchscript")
    ok = dicomnode_cli("models", "check", str(good))
    assert ok.returncode == 0 and "good 1.0.0" in ok.stdout and "OK" in ok.stdout, ok.stderr

    two = export_model(tmp_path / "two", "two", "pt2", channels=2)  # manifest promises one output
    mismatch = dicomnode_cli("models", "check", str(two))
    assert mismatch.returncode == 2 and "expected (N, 1, *spatial)" in mismatch.stderr

    broken = export_model(tmp_path / "broken", "broken", "torchscript")
    (broken / "model.ts").write_bytes(b"not a model")
    unloadable = dicomnode_cli("models", "check", str(broken))
    assert unloadable.returncode == 2 and "cannot load" in unloadable.stderr

    bad = export_model(tmp_path / "bad", "bad", "torchscript")
    manifest = bad / "manifest.toml"
    manifest.write_text(manifest.read_text().replace("threshold = 0.5", "threshold = 5"))
    refused = dicomnode_cli("models", "check", str(bad))
    assert refused.returncode == 2 and "outputs.0.threshold" in refused.stderr and "manifest.toml" in refused.stderr

    assert dicomnode_cli("models", "check", str(tmp_path / "nowhere")).returncode == 2


def test_a_bad_manifest_in_the_models_directory_stops_start_up_naming_it(tmp_path: Path) -> None:
    bad = export_model(tmp_path / "models" / "bad", "bad", "torchscript")
    manifest = bad / "manifest.toml"
    manifest.write_text(manifest.read_text().replace('task = "segmentation"', 'task = "guessing"'))
    config = write_config(tmp_path / "c.toml", {"analysis": {"models_dir": str(tmp_path / "models")}})
    r = dicomnode_cli("models", "list", "--config", str(config))
    assert r.returncode == 2 and "analysis.models_dir" in r.stderr and "task" in r.stderr


def test_the_node_runs_a_models_directory_model_end_to_end(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    export_model(tmp_path / "models" / "bright", "bright", "pt2")
    node = start_node(
        **analysis_overrides(rules=[rule("bright", ["bright"], modality=["CT"])], models_dir=str(tmp_path / "models"))
    )
    listed = dicomnode_cli("models", "list", "--config", str(node.workdir / "dicomnode.toml"))
    assert listed.returncode == 0 and "bright" in listed.stdout
    spec, files = series(tmp_path, 10, lesion_hu=90, lesion_radius_mm=3.0)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)
    [job] = wait_jobs(catalog, 1, {"done", "failed"}, timeout=90)
    assert job.state == "done", job.last_error
    [result] = result_rows(catalog)
    expected = ModelSpec.from_manifest(tmp_path / "models" / "bright" / "manifest.toml")
    assert result.model == "bright" and result.model_uid == expected.uid
    assert result.findings and result.findings[0]["code"]["value"] == "bright"
