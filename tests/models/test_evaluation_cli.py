"""`dicomnode models evaluate`: on phantoms and on a user's labelled DICOM folder, with a ROC curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dicomnode.demo.synthetic import SeriesSpec, radiograph, write_volume_series
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from tests.support.helpers import dicomnode_cli


def labelled_ct_folder(folder: Path) -> list[tuple[str, bool]]:
    """Two bleeds and two clean heads as DICOM series, plus a non-DICOM file that must be ignored."""
    labels = []
    for seed, bleeds in [(9501, 1), (9502, 1), (9600, 0), (9601, 0)]:
        p = ct_head(np.random.default_rng(seed), bleeds=bleeds)
        spec = SeriesSpec(
            n_slices=p.hu.shape[0],
            rows=p.hu.shape[1],
            columns=p.hu.shape[2],
            slice_thickness_mm=p.spacing_mm[0],
            pixel_spacing_mm=p.spacing_mm[1],
        )
        write_volume_series(spec, p.hu, folder / spec.series_uid)
        labels.append((spec.study_uid, bool(bleeds)))
    (folder / "README.txt").write_text("not DICOM")
    return labels


def test_evaluate_on_a_labelled_dicom_folder_writes_figures_and_a_roc_png(tmp_path: Path) -> None:
    folder = tmp_path / "study-set"
    labels = labelled_ct_folder(folder)
    (folder / "labels.csv").write_text(
        "study_instance_uid,positive\n" + "".join(f"{uid},{'yes' if pos else 0}\n" for uid, pos in labels)
    )
    r = dicomnode_cli("models", "evaluate", "ct-hemorrhage", "--dicom", str(folder), "--roc", "roc.png", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    assert (figures["cases"], figures["positives"]) == (4, 2)
    assert figures["auc"] == 1.0 and figures["sensitivity"] == 1.0 and figures["specificity"] == 1.0
    with Image.open(tmp_path / "roc.png") as png:
        assert png.format == "PNG" and png.size == (480, 480)


def test_evaluate_folder_errors_name_the_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "study-set"
    labels = labelled_ct_folder(folder)
    (folder / "labels.csv").write_text(f"study_instance_uid,positive\n{labels[0][0]},1\n{labels[1][0]},maybe\n")
    bad = dicomnode_cli("models", "evaluate", "ct-hemorrhage", "--dicom", str(folder), cwd=tmp_path)
    assert bad.returncode == 2 and "labels.csv:3" in bad.stderr
    (folder / "labels.csv").write_text("study_instance_uid,positive\n1.2.3.4,1\n")
    missing = dicomnode_cli("models", "evaluate", "ct-hemorrhage", "--dicom", str(folder), cwd=tmp_path)
    assert missing.returncode == 2 and "no images of CT for 1 labelled studies" in missing.stderr
    nolabels = dicomnode_cli("models", "evaluate", "ct-hemorrhage", "--dicom", str(tmp_path / "empty"), cwd=tmp_path)
    assert nolabels.returncode == 2 and "cannot read labels" in nolabels.stderr


def test_evaluate_a_radiograph_folder_in_monochrome1(tmp_path: Path) -> None:
    """Radiographs stored MONOCHROME1 (air bright) are inverted on load, so the detector still sees dense = bright."""
    folder = tmp_path / "xr"
    folder.mkdir()
    rows = ["study_instance_uid,positive"]
    for seed, present in [(9700, True), (9701, True), (9800, False), (9801, False)]:
        p = chest_radiograph(np.random.default_rng(seed), pneumothorax=present)
        spec = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=p.spacing_mm[0])
        radiograph(spec, p.image, monochrome1=True).save_as(folder / f"{seed}.dcm", enforce_file_format=True)
        rows.append(f"{spec.study_uid},{int(present)}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    r = dicomnode_cli("models", "evaluate", "cxr-pneumothorax", "--dicom", str(folder), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    assert figures["sensitivity"] == 1.0 and figures["specificity"] == 1.0, figures
    assert list(tmp_path.glob("*.png")) == [], "no file is written unless --roc asks for it"


def test_evaluate_on_phantoms_and_refusals(tmp_path: Path) -> None:
    r = dicomnode_cli("models", "evaluate", "cxr-pneumothorax", "--cases", "12", "--seed", "4242", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["cases"] == 12 and list(tmp_path.glob("*.png")) == []
    stand_in = dicomnode_cli("models", "evaluate", "standin-hyperdense", cwd=tmp_path)
    assert stand_in.returncode == 2 and "no phantom evaluation" in stand_in.stderr
