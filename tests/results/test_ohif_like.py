"""What OHIF does with our results, run under node with the libraries OHIF 3.13 ships (dcmjs to parse,
@cornerstonejs/adapters to hydrate and to load a SEG): every finding of a CT and of a radiograph is a measurement
group with its values and a region on its image, absent findings are stated in words, hydration turns each finding
into a Cornerstone rectangle on its slice, and the SEG loads into labelmaps over the source images with the SR's
tracking UIDs. `make test` installs the npm packages (tests/js/package-lock.json)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from pydicom import Dataset

from dicomnode.analysis.volume import load_series_with_sources
from dicomnode.demo.synthetic import SeriesSpec, radiograph, write_volume_series
from dicomnode.results.content import AnalysedSeries
from dicomnode.results.encode import encode_result
from dicomnode.results.identity import HYDRATABLE_REGION_TAG, ResultIdentity
from models.findings import Finding
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from models.registry import builtin_spec
from tests.support.helpers import REPO_ROOT

JS = REPO_ROOT / "tests" / "js"


@pytest.fixture(scope="session")
def node_with_dcmjs() -> str:
    node = shutil.which("node")
    assert node, "node is needed (a fresh machine has it)"
    wanted = json.loads((JS / "package.json").read_text())["dependencies"]
    if not all((JS / "node_modules" / name / "package.json").is_file() for name in wanted):
        npm = subprocess.run(
            [shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True
        )
        assert npm.returncode == 0, npm.stdout + npm.stderr
    return node


def ohif(node: str, kind: str, path: Path) -> dict:
    out = subprocess.run([node, str(JS / "ohif_like.mjs"), kind, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def hydrated(node: str, sr: Path, seg: Path | None, sources: list[Path]) -> dict:
    command = [node, str(JS / "ohif_hydrate.mjs"), str(sr), str(seg or "-"), *map(str, sources)]
    out = subprocess.run(command, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def box_corners_in_patient(source: Dataset, finding: Finding) -> list[list[float]]:
    """The finding's box corners in patient coordinates (mm), from the image's geometry: a SCOORD's (0, 0) is the
    first pixel's outer corner, half a pixel before its centre (Image Position)."""
    _, y0, x0, _, y1, x1 = finding.bbox
    spacing = [float(v) for v in getattr(source, "PixelSpacing", None) or source.ImagerPixelSpacing]
    orientation = [float(v) for v in getattr(source, "ImageOrientationPatient", [1, 0, 0, 0, 1, 0])]
    origin = np.array([float(v) for v in getattr(source, "ImagePositionPatient", [0, 0, 0])])
    along_row, along_column = np.array(orientation[:3]), np.array(orientation[3:])

    def world(x: float, y: float) -> list[float]:
        point = origin + along_row * spacing[1] * (x - 0.5) + along_column * spacing[0] * (y - 0.5)
        return [round(float(c), 3) for c in point]

    return sorted(world(x, y) for x in (x0, x1) for y in (y0, y1))


def rounded(points: list[list[float]]) -> list[list[float]]:
    return sorted([round(float(c), 3) for c in p] for p in points)


def encoded(folder: Path, volume_and_sources: tuple, model: str, study_uid: str) -> tuple[AnalysedSeries, dict]:
    volume, sources = volume_and_sources
    spec = builtin_spec(model)
    case = AnalysedSeries(volume.series_uid, sources, spec.load("cpu").predict(volume))
    identity = ResultIdentity.of(study_uid, spec.name, spec.version, spec.uid)
    paths = {}
    for ds in encode_result([case], identity, [o.code for o in spec.manifest.outputs], set()):
        paths[ds.Modality] = folder / f"{ds.Modality}.dcm"
        ds.save_as(paths[ds.Modality], enforce_file_format=True)
    return case, paths


def radiograph_case(folder: Path, seed: int, pneumothorax: bool) -> tuple[Path, AnalysedSeries, dict]:
    """A chest radiograph written to `folder`, analysed by cxr-pneumothorax: its file, the case, the result files."""
    folder.mkdir(parents=True, exist_ok=True)
    p = chest_radiograph(np.random.default_rng(seed), pneumothorax=pneumothorax)
    spec = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=1.4)
    path = folder / "xr.dcm"
    radiograph(spec, p.image).save_as(path, enforce_file_format=True)
    case, paths = encoded(folder, load_series_with_sources([path], spec.series_uid), "cxr-pneumothorax", spec.study_uid)
    return path, case, paths


def test_ct_findings_have_values_and_a_region_and_the_seg_matches(node_with_dcmjs: str, tmp_path: Path) -> None:
    p = ct_head(np.random.default_rng(9501), bleeds=2)
    series = SeriesSpec(n_slices=32, rows=128, columns=128, slice_thickness_mm=5.0, pixel_spacing_mm=1.5)
    loaded = load_series_with_sources(write_volume_series(series, p.hu, tmp_path / "ct"), series.series_uid)
    case, paths = encoded(tmp_path, loaded, "ct-hemorrhage", series.study_uid)
    sr = ohif(node_with_dcmjs, "sr", paths["SR"])
    groups = [g for g in sr["groups"] if g.get("values")]
    assert all("skipped" not in g for g in sr["groups"]), sr["groups"]
    assert len(groups) == len(case.findings) >= 2
    for group, finding in zip(groups, case.findings, strict=True):
        assert group["finding"] == "Intracranial hemorrhage"
        assert group["values"]["Probability"] == pytest.approx(finding.probability, abs=1e-3)
        assert group["values"]["Volume"] == pytest.approx(finding.measurement("volume"), rel=1e-3)
        assert group["coords"] == {
            "points": 5,
            "graphicType": "POLYLINE",
            "image": case.sources[finding.centre_slice].SOPInstanceUID,
        }, "OHIF skips a group it finds no SCOORD in"
    assert sr["libraryImages"] == len({f.centre_slice for f in case.findings})
    seg = ohif(node_with_dcmjs, "seg", paths["SEG"])
    assert [s["trackingUid"] for s in seg["segments"]] == [g["trackingUid"] for g in groups]
    assert all(s["colour"] == 3 for s in seg["segments"]) and seg["frames"] > 0


def test_a_radiograph_finding_is_a_rectangle_and_a_negative_says_so(node_with_dcmjs: str, tmp_path: Path) -> None:
    for pneumothorax in (True, False):
        _, case, paths = radiograph_case(tmp_path / str(pneumothorax), 9701, pneumothorax)
        groups = ohif(node_with_dcmjs, "sr", paths["SR"])["groups"]
        if pneumothorax:
            [group] = groups
            assert group["coords"]["image"] == case.sources[0].SOPInstanceUID and group["values"]["Probability"] > 0.5
        else:
            [group] = groups
            assert group["coded"] == ["Absent"] and group["statements"] == [
                "No pneumothorax found by cxr-pneumothorax " + builtin_spec("cxr-pneumothorax").version
            ]


def test_ohif_hydrates_each_ct_finding_into_a_rectangle_and_loads_the_seg_masks(
    node_with_dcmjs: str, tmp_path: Path
) -> None:
    p = ct_head(np.random.default_rng(9501), bleeds=2)
    series = SeriesSpec(n_slices=32, rows=128, columns=128, slice_thickness_mm=5.0, pixel_spacing_mm=1.5)
    files = write_volume_series(series, p.hu, tmp_path / "ct")
    case, paths = encoded(
        tmp_path, load_series_with_sources(files, series.series_uid), "ct-hemorrhage", series.study_uid
    )
    assert len(case.findings) >= 2
    out = hydrated(node_with_dcmjs, paths["SR"], paths["SEG"], files)
    assert out["sr"]["rehydratable"] == len(case.findings), "OHIF offers hydration only for Cornerstone-tagged groups"
    assert list(out["sr"]["tools"]) == ["RectangleROI"] and out["sr"]["warnings"] == []
    tools = out["sr"]["tools"]["RectangleROI"]
    model = builtin_spec("ct-hemorrhage")
    identity = ResultIdentity.of(series.study_uid, model.name, model.version, model.uid)
    for index, (tool, finding) in enumerate(zip(tools, case.findings, strict=True)):
        source = case.sources[finding.centre_slice]
        assert tool["image"] == source.SOPInstanceUID and tool["finding"] == "Intracranial hemorrhage"
        assert tool["trackingUid"] == identity.tracking_uid(index)
        assert rounded(tool["world"]) == box_corners_in_patient(source, finding)
    segments = out["seg"]["segments"]
    assert [s["trackingUid"] for s in segments] == [t["trackingUid"] for t in tools]
    voxels = {int(k): v for k, v in out["seg"]["voxels"].items()}
    assert voxels == {s["number"]: int(f.mask.sum()) for s, f in zip(segments, case.findings, strict=True)}


def test_ohif_hydrates_a_radiograph_finding_and_never_an_absent_one(node_with_dcmjs: str, tmp_path: Path) -> None:
    for pneumothorax in (True, False):
        path, case, paths = radiograph_case(tmp_path / str(pneumothorax), 9701, pneumothorax)
        out = hydrated(node_with_dcmjs, paths["SR"], None, [path])["sr"]
        if pneumothorax:
            [finding] = case.findings
            [tool] = out["tools"]["RectangleROI"]
            assert out["rehydratable"] == 1 and tool["image"] == case.sources[0].SOPInstanceUID
            assert rounded(tool["world"]) == box_corners_in_patient(case.sources[0], finding)
        else:
            assert out["groups"] == 1 and out["rehydratable"] == 0 and out["tools"] == {}


def test_only_groups_with_a_region_carry_cornerstones_tag(node_with_dcmjs: str, tmp_path: Path) -> None:
    _, _, paths = radiograph_case(tmp_path, 9701, pneumothorax=False)
    [group] = ohif(node_with_dcmjs, "sr", paths["SR"])["groups"]
    assert not group["tracking"].startswith(HYDRATABLE_REGION_TAG) and group["tracking"] == "pneumothorax 1"
