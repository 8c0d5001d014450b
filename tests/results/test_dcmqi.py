"""dcmqi (QIICR's DICOM for quantitative imaging tools, from PyPI) reads our SR and SEG as 3D Slicer would:
`tid1500reader` finds every finding with its values, `segimage2itkimage` writes each segment as a volume whose
size equals the SR's, and neither warns."""

from __future__ import annotations

import gzip
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dicomnode.analysis.volume import load_series_with_sources
from dicomnode.demo.synthetic import SeriesSpec, write_volume_series
from dicomnode.results.content import AnalysedSeries
from dicomnode.results.encode import encode_result
from dicomnode.results.identity import ResultIdentity
from models.phantoms.ct_head import ct_head
from models.registry import builtin_spec


def dcmqi(tool: str) -> str:
    found = shutil.which(tool, path=str(Path(sys.executable).parent))
    assert found, f"{tool} not installed: make test installs dcmqi from PyPI"
    return found


def read_nrrd(path: Path) -> tuple[np.ndarray, float]:
    """The voxels of an ITK-written NRRD (gzip, little endian) and the volume of one voxel in mL."""
    raw = path.read_bytes()
    header, data = raw.split(b"\n\n", 1)
    fields = dict(line.split(": ", 1) for line in header.decode().splitlines()[1:] if ": " in line)
    sizes = [int(v) for v in fields["sizes"].split()]
    dtype = {"short": "<i2", "unsigned char": "u1", "unsigned short": "<u2"}[fields["type"]]
    voxels = np.frombuffer(gzip.decompress(data) if fields["encoding"] == "gzip" else data, dtype=dtype)
    directions = [[float(v) for v in d.split(",")] for d in re.findall(r"\(([^)]*)\)", fields["space directions"])]
    voxel_ml = abs(np.linalg.det(np.array(directions))) / 1000
    return voxels.reshape(sizes[::-1]), voxel_ml


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, AnalysedSeries]:
    folder = tmp_path_factory.mktemp("dcmqi")
    p = ct_head(np.random.default_rng(9501), bleeds=2)
    series = SeriesSpec(n_slices=32, rows=128, columns=128, slice_thickness_mm=5.0, pixel_spacing_mm=1.5)
    volume, sources = load_series_with_sources(write_volume_series(series, p.hu, folder / "ct"), series.series_uid)
    spec = builtin_spec("ct-hemorrhage")
    case = AnalysedSeries(series.series_uid, sources, spec.load("cpu").predict(volume))
    identity = ResultIdentity.of(series.study_uid, spec.name, spec.version, spec.uid)
    for ds in encode_result([case], identity, [o.code for o in spec.manifest.outputs], set()):
        ds.save_as(folder / f"{ds.Modality}.dcm", enforce_file_format=True)
    return folder, case


def test_tid1500reader_reads_every_finding_with_its_values(encoded: tuple[Path, AnalysedSeries]) -> None:
    folder, case = encoded
    out = subprocess.run(
        [dcmqi("tid1500reader"), "--inputDICOM", str(folder / "SR.dcm"), "--outputMetadata", str(folder / "sr.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and "warn" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    groups = json.loads((folder / "sr.json").read_text())["Measurements"]
    assert len(groups) == len(case.findings) >= 2
    for group, finding in zip(groups, case.findings, strict=True):
        values = {item["quantity"]["CodeMeaning"]: float(item["value"]) for item in group["measurementItems"]}
        assert values["Probability"] == pytest.approx(finding.probability, abs=1e-3)
        assert values["Volume"] == pytest.approx(finding.measurement("volume"), rel=1e-3)
        assert group["measurementAlgorithmIdentification"]["AlgorithmName"] == "ct-hemorrhage"
        # the volume is the segment's voxels times a voxel's volume (the next test), and the SR says so
        assert group["measurementMethod"]["CodeValue"] == "126030"
        assert group["measurementMethod"]["CodingSchemeDesignator"] == "DCM"


def test_segimage2itkimage_volumes_equal_the_sr_volumes(encoded: tuple[Path, AnalysedSeries]) -> None:
    folder, case = encoded
    (folder / "nrrd").mkdir(exist_ok=True)
    out = subprocess.run(
        [
            dcmqi("segimage2itkimage"),
            "--inputDICOM",
            str(folder / "SEG.dcm"),
            "--outputDirectory",
            str(folder / "nrrd"),
            "--outputType",
            "nrrd",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and "warn" not in (out.stdout + out.stderr).lower(), out.stdout + out.stderr
    meta = json.loads((folder / "nrrd" / "meta.json").read_text())
    labels = [attrs[0]["SegmentLabel"] for attrs in meta["segmentAttributes"]]
    assert len(labels) == len(case.findings)
    for k, finding in enumerate(case.findings, start=1):
        voxels, voxel_ml = read_nrrd(folder / "nrrd" / f"{k}.nrrd")
        assert (voxels > 0).sum() * voxel_ml == pytest.approx(finding.measurement("volume"), rel=0.01)
