"""`dicomnode models evaluate`: on phantoms and on a user's labelled DICOM folder, with a ROC curve PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dicomnode.demo.synthetic import SeriesSpec, radiograph, volume_series, write_volume_series
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from tests.support.helpers import dicomnode_cli


def write_head(seed: int, bleeds: int, folder: Path) -> tuple[SeriesSpec, list[Path]]:
    """A CT head phantom written as a DICOM series under folder/<series UID>."""
    p = ct_head(np.random.default_rng(seed), bleeds=bleeds)
    spec = volume_series(p.hu, p.spacing_mm)
    return spec, write_volume_series(spec, p.hu, folder / spec.series_uid)


def labelled_ct_folder(folder: Path) -> list[tuple[str, bool]]:
    """Two bleeds and two clean heads as DICOM series, plus a non-DICOM file that must be ignored."""
    labels = []
    for seed, bleeds in [(9501, 1), (9502, 1), (9600, 0), (9601, 0)]:
        spec, _ = write_head(seed, bleeds, folder)
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
    low, high = figures["sensitivity_ci"]
    assert low < 0.5 and high == 1.0, "two of two is a wide interval"
    assert figures["unreadable"] == [] and figures["out_of_scope"] == []
    with Image.open(tmp_path / "roc.png") as png:
        assert png.format == "PNG" and png.size == (480, 480)


def test_unreadable_and_out_of_scope_studies_are_counted_and_listed_not_fatal(tmp_path: Path) -> None:
    """A study whose pixels do not decode and a CT chest in a head-CT set: both listed with their reason; the rest
    scored; the per-study CSV has every study. Negatives only: specificity and false-positive rate, no AUC."""
    import csv

    import pydicom

    folder = tmp_path / "negatives"
    rows = []
    for seed in (9600, 9601):
        spec, paths = write_head(seed, 0, folder)
        rows.append(spec.study_uid)
        if seed == 9601:  # truncate one slice's pixel data: the study cannot be read
            ds = pydicom.dcmread(paths[3])
            ds.PixelData = ds.PixelData[:100]
            ds.save_as(paths[3])
            broken = spec.study_uid
    chest = SeriesSpec(n_slices=8, rows=64, columns=64, body_part="CHEST", description="CT CHEST")
    write_volume_series(chest, np.full((8, 64, 64), 30.0, np.float32), folder / chest.series_uid)
    rows.append(chest.study_uid)
    (folder / "labels.csv").write_text("study_instance_uid,positive\n" + "".join(f"{uid},0\n" for uid in rows))
    r = dicomnode_cli("models", "evaluate", "ct-hemorrhage", "--dicom", str(folder), "--csv", "cases.csv", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    figures = json.loads(r.stdout)
    assert (figures["cases"], figures["positives"], figures["specificity"]) == (1, 0, 1.0), figures
    assert figures["auc"] is None and figures["sensitivity"] is None and figures["false_positive_rate"] == 0.0
    assert [u["study"] for u in figures["unreadable"]] == [broken] and "cannot" in figures["unreadable"][0]["problem"]
    [refused] = figures["out_of_scope"]
    assert refused["study"] == chest.study_uid and "CHEST" in refused["reason"], refused
    table = list(csv.DictReader((tmp_path / "cases.csv").open()))
    assert {row["study"] for row in table} == set(rows)
    scored = [row for row in table if row["score"]]
    assert len(scored) == 1 and float(scored[0]["score"]) < 0.5 and scored[0]["findings"] == "0"
    assert "manufacturer" in table[0] and "slice thickness (mm)" in table[0]
    no_roc = dicomnode_cli(
        "models", "evaluate", "ct-hemorrhage", "--dicom", str(folder), "--roc", "r.png", cwd=tmp_path
    )
    assert no_roc.returncode == 2 and "needs positives and negatives" in no_roc.stderr


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
