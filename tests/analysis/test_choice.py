"""Which series of a study a volumetric model reads: the one a radiologist reads it on, from one header each."""

from __future__ import annotations

from pathlib import Path

import pydicom
import pytest

from dicomnode.analysis.choice import ranked, sharp_kernel
from dicomnode.catalog.db import open_catalog
from models.registry import builtin_spec
from tests.support.dicom_files import series
from tests.support.helpers import storescu
from tests.support.pipeline import analysis_overrides, result_rows, wait_jobs

ICH = builtin_spec("ct-hemorrhage").manifest  # reads 5 mm slices (its model grid)
SAGITTAL = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]


def _study_series(tmp: Path, study_uid: str, name: str, n: int = 3, **header: object) -> tuple[str, list[Path]]:
    thickness = float(header.pop("SliceThickness", 5.0))
    lesion = header.pop("lesion_hu", None)
    spec, files = series(
        tmp / name, n, rows=32, columns=32, study_uid=study_uid, slice_thickness_mm=thickness, lesion_hu=lesion
    )
    for path in files:
        ds = pydicom.dcmread(path)
        for keyword, value in header.items():
            setattr(ds, keyword, value)
        ds.save_as(path, enforce_file_format=True)
    return spec.series_uid, files


def test_a_ct_head_study_is_read_on_its_original_axial_soft_tissue_series_at_the_model_spacing(
    tmp_path: Path,
) -> None:
    study = pydicom.uid.generate_uid()
    made = {
        "localizer": _study_series(tmp_path, study, "scout", 1, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"]),
        "sagittal": _study_series(
            tmp_path, study, "sag", 5, ImageType=["DERIVED", "SECONDARY", "MPR"], ImageOrientationPatient=SAGITTAL
        ),
        "bone": _study_series(tmp_path, study, "bone", 4, ConvolutionKernel="H70h", SeriesDescription="Head 5mm"),
        "thin": _study_series(tmp_path, study, "thin", 8, SliceThickness=0.625, ConvolutionKernel="H30s"),
        "thick": _study_series(tmp_path, study, "thick", 4, ConvolutionKernel="H30s", SeriesDescription="Head 5mm"),
    }
    names = {uid: name for name, (uid, _) in made.items()}
    order = [names[uid] for uid in ranked({uid: files for uid, files in made.values()}, ICH)]
    assert order == ["thick", "thin", "bone", "sagittal", "localizer"]


def test_an_unreadable_series_is_ranked_last_and_an_empty_one_too(tmp_path: Path) -> None:
    study = pydicom.uid.generate_uid()
    good, files = _study_series(tmp_path, study, "good", ConvolutionKernel="BONE")
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    assert ranked({"1.2.3": [junk], "1.2.4": [], good: files}, ICH)[0] == good


@pytest.mark.parametrize(
    ("kernel", "description", "sharp"),
    [
        ("H70h", "", True),
        ("Hr64", "", True),
        (["Br68", "3"], "", True),
        ("BONEPLUS", "", True),
        ("LUNG", "", True),
        ("H30s", "", False),
        ("Hr38", "", False),
        ("STANDARD", "", False),
        ("SOFT", "", False),
        ("FC21", "", False),
        (None, "Head Bone 5mm", True),
        (None, "Head 5mm", False),
        (None, "Bonelike study", False),  # a word, not a kernel
    ],
)
def test_sharp_kernels_are_named_by_kernel_or_description(kernel: object, description: str, sharp: bool) -> None:
    header = pydicom.Dataset()
    if kernel is not None:
        header.ConvolutionKernel = kernel
    header.SeriesDescription = description
    assert sharp_kernel(header) is sharp


@pytest.mark.parametrize("series_setting", ["best", "all"])
def test_a_study_with_a_bone_series_is_read_on_its_soft_tissue_one_unless_every_series_is_asked_for(
    start_node,  # noqa: ANN001
    tmp_path: Path,
    series_setting: str,
) -> None:
    """The bone reconstruction holds a hyperdense spot the stand-in flags (a sharp kernel's noise, say); the
    soft-tissue series of the same study does not. Read on the soft one, the study has no finding and its inputs
    are that series'; with `analysis.series = "all"` both are read and the bone one's spot is reported."""
    node = start_node(**analysis_overrides(series=series_setting))
    study = pydicom.uid.generate_uid()
    soft, soft_files = _study_series(tmp_path, study, "soft", 8, ConvolutionKernel="H30s")
    bone, bone_files = _study_series(tmp_path, study, "bone", 8, ConvolutionKernel="H70h", lesion_hu=80)
    assert storescu(node, bone_files + soft_files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"done"}, timeout=90)
    assert sorted(job.series_uids) == sorted([soft, bone]), "both series were routed to the model"
    [result] = result_rows(catalog)
    if series_setting == "best":
        assert result.findings == [], "the bone series was not read"
        assert f"read series {soft} (of 2 routed, ranked best first)" in node.log()
    else:
        assert {f["series_uid"] for f in result.findings} == {bone}


def test_when_the_best_series_cannot_be_read_the_next_one_is(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    """The soft-tissue series lost a slice on the way (not one evenly spaced stack): the study is read on the
    next series rather than failed; the log says which could not be read and why."""
    node = start_node(**analysis_overrides())
    study = pydicom.uid.generate_uid()
    soft, soft_files = _study_series(tmp_path, study, "soft", 8, ConvolutionKernel="H30s")
    bone, bone_files = _study_series(tmp_path, study, "bone", 8, ConvolutionKernel="H70h", lesion_hu=80)
    del soft_files[4]
    assert storescu(node, soft_files + bone_files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"done"}, timeout=90)
    [result] = result_rows(catalog)
    assert {f["series_uid"] for f in result.findings} == {bone}
    log = node.log()
    assert f"series {soft} cannot be read, the next is tried" in log and "evenly spaced" in log
    assert f"read series {bone} (of 2 routed, ranked best first)" in log
