"""Encoding and delivering AI results for a 300-slice CT with a 3-lesion mask.

  encode    dicomnode.results.encode_result (highdicom): the binary SEG (empty frames omitted) and the
            TID 1500 SR that references it (encode_s); the same plus a Secondary Capture key image per
            finding and a GSPS (encode_all_s: SR + SEG + SC + GSPS); peer `packbits`: numpy packing the same
            masks to bytes, the least any SEG writer must do
  deliver   the SCU path the outbox uses (dicomnode.dicom.scu.send_files) sending SR + SEG to dcmtk storescp;
            peer `storescu`: dcmtk storescu -R (needed contexts only), same files, same storescp
Median of --runs. Target from issue 5: encoding <= 1 s on 2 cores (reported, not asserted).

Usage: python bench/results.py [--runs 5] [--slices 300] [--size 512] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom

from dicomnode.config.export import ResultKind
from dicomnode.demo.synthetic import SeriesSpec, ct_slice
from dicomnode.dicom.scu import Destination, send_files
from dicomnode.results.content import AnalysedSeries
from dicomnode.results.encode import encode_result
from dicomnode.results.identity import ResultIdentity, result_uid
from models.findings import Finding, Measurement
from models.registry import builtin_spec

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest import free_port, wait_port  # noqa: E402 - the sibling benchmark script

OUT = Path(__file__).resolve().parent / "out"
DCMTK_ENV = {**os.environ, "TCP_NODELAY": "1"}


def case(slices: int, size: int, folder: Path) -> tuple[AnalysedSeries, ResultIdentity]:
    """The slices written to `folder` (the key images read their pixels back), their headers, three lesions."""
    spec = SeriesSpec(n_slices=slices, rows=size, columns=size, slice_thickness_mm=0.625, pixel_spacing_mm=0.45)
    ramp = np.tile(np.linspace(1000, 1100, size, dtype=np.float32), (size, 1)).astype(np.int16)
    sources = []
    for i in range(slices):
        path = folder / f"{i:05d}.dcm"
        ct_slice(spec, i, ramp).save_as(path, enforce_file_format=True)
        sources.append(pydicom.dcmread(path, stop_before_pixels=True))
    model = builtin_spec("ct-hemorrhage")
    output = model.manifest.outputs[0]
    findings = []
    scale = size / 512
    lesions = [((0.33, 0.4, 0.35), 30), ((0.5, 0.6, 0.62), 20), ((0.73, 0.5, 0.3), 12)]  # centre fraction, radius
    for k, (fraction, radius_px) in enumerate(lesions):
        radius = max(2, round(radius_px * scale))
        centre = tuple(round(f * n) for f, n in zip(fraction, (slices, size, size), strict=True))
        lo = [c - radius for c in centre]
        grid = np.ogrid[tuple(slice(-radius, radius) for _ in range(3))]
        mask = sum((g / radius) ** 2 for g in grid) <= 1.0
        bbox = (*lo, *(c + radius for c in centre))
        findings.append(
            Finding(
                output.label,
                output.code,
                0.9 - 0.1 * k,
                bbox,
                tuple(float(c) for c in centre),
                (Measurement("volume", float(mask.sum()) * 0.127 / 1000, "ml"),),
                mask,
                output.finding_site,
            )
        )
    identity = ResultIdentity(
        result_uid(spec.study_uid, model.name, model.version), model.name, model.version, model.uid
    )
    return AnalysedSeries(spec.series_uid, sources, findings), identity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--json", type=Path, default=OUT / "results.json")
    args = parser.parse_args()
    sources_dir = Path(tempfile.mkdtemp(prefix="bench-results-"))
    series, identity = case(args.slices, args.size, sources_dir)
    looked_for = [f.code for f in series.findings[:1]]
    encode, encode_all, packbits, instances = [], [], [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        encode_result([series], identity, looked_for, set())
        encode.append(time.perf_counter() - start)
        start = time.perf_counter()
        instances = encode_result([series], identity, looked_for, {ResultKind.SC, ResultKind.GSPS})
        encode_all.append(time.perf_counter() - start)
        start = time.perf_counter()
        full = np.zeros((args.slices, args.size, args.size, len(series.findings)), bool)
        for k, f in enumerate(series.findings):
            z0, y0, x0, z1, y1, x1 = f.bbox
            full[z0:z1, y0:y1, x0:x1, k] = f.mask
        np.packbits(full[full.reshape(len(full), -1).any(axis=1)]).tobytes()
        packbits.append(time.perf_counter() - start)
    results: dict = {"slices": args.slices, "size": args.size, "lesions": len(series.findings)}
    results["encode_s"] = round(statistics.median(encode), 3)
    results["encode_all_s"] = round(statistics.median(encode_all), 3)  # SR + SEG + 3 SC + GSPS
    results["packbits_s"] = round(statistics.median(packbits), 4)
    # from the unrounded medians: a tiny smoke-test volume packs in well under a millisecond
    results["encode_vs_packbits"] = round(statistics.median(encode) / statistics.median(packbits), 1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = []
        for k, ds in enumerate(instances):
            path = work / f"{ds.Modality}-{k}.dcm"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
        results["sizes_bytes"] = {p.stem: p.stat().st_size for p in paths}
        if shutil.which("storescp") and shutil.which("storescu"):
            results.update(deliver(work, paths, args.runs))
    shutil.rmtree(sources_dir, ignore_errors=True)
    print(json.dumps(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


def deliver(work: Path, paths: list[Path], runs: int) -> dict:
    port = free_port()
    (work / "in").mkdir()
    pacs = subprocess.Popen(
        ["storescp", "-aet", "PACS", "-od", str(work / "in"), "+xa", str(port)],
        env=DCMTK_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, pacs)  # listening, however long a loaded machine takes to start it
        ours, peer = [], []
        for _ in range(runs):
            start = time.perf_counter()
            assert all(r.ok for r in send_files(paths, Destination("PACS", "127.0.0.1", port)))
            ours.append(time.perf_counter() - start)
            start = time.perf_counter()
            subprocess.run(
                ["storescu", "-R", "-aec", "PACS", "127.0.0.1", str(port), *map(str, paths)],
                env=DCMTK_ENV,
                check=True,
                capture_output=True,
            )
            peer.append(time.perf_counter() - start)
    finally:
        pacs.terminate()
        pacs.wait()
    median_ours, median_peer = statistics.median(ours), statistics.median(peer)
    return {
        "deliver_s": round(median_ours, 3),
        "storescu_s": round(median_peer, 3),
        "deliver_vs_storescu": round(median_ours / median_peer, 2),
    }


if __name__ == "__main__":
    main()
