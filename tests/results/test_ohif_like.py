"""What OHIF does with our results, run under node with dcmjs (the library OHIF parses DICOM with): every finding
of a CT and of a radiograph is a measurement group with its values and a region on its image, absent findings
are stated in words, and the SEG's segments carry the SR's tracking UIDs. `make test` installs dcmjs with npm."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from dicomnode.analysis.volume import load_series_with_sources
from dicomnode.demo.synthetic import SeriesSpec, radiograph, write_volume_series
from dicomnode.results.content import AnalysedSeries
from dicomnode.results.encode import encode_result
from dicomnode.results.identity import ResultIdentity
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from models.registry import builtin_spec
from tests.support.helpers import REPO_ROOT

JS = REPO_ROOT / "tests" / "js"


@pytest.fixture(scope="session")
def node_with_dcmjs() -> str:
    node = shutil.which("node")
    assert node, "node is needed (a fresh machine has it)"
    if not (JS / "node_modules" / "dcmjs").is_dir():
        npm = subprocess.run(
            [shutil.which("npm") or "npm", "ci", "--no-audit", "--no-fund"], cwd=JS, capture_output=True, text=True
        )
        assert npm.returncode == 0, npm.stdout + npm.stderr
    return node


def ohif(node: str, kind: str, path: Path) -> dict:
    out = subprocess.run([node, str(JS / "ohif_like.mjs"), kind, str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


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
        p = chest_radiograph(np.random.default_rng(9700), pneumothorax=pneumothorax)
        spec = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=1.4)
        path = tmp_path / f"xr-{pneumothorax}.dcm"
        radiograph(spec, p.image).save_as(path, enforce_file_format=True)
        folder = tmp_path / str(pneumothorax)
        folder.mkdir()
        case, paths = encoded(
            folder, load_series_with_sources([path], spec.series_uid), "cxr-pneumothorax", spec.study_uid
        )
        groups = ohif(node_with_dcmjs, "sr", paths["SR"])["groups"]
        if pneumothorax:
            [group] = groups
            assert group["coords"]["image"] == case.sources[0].SOPInstanceUID and group["values"]["Probability"] > 0.5
        else:
            [group] = groups
            assert group["coded"] == ["Absent"] and group["statements"] == [
                "No pneumothorax found by cxr-pneumothorax " + builtin_spec("cxr-pneumothorax").version
            ]
