"""Model time per study on the CPU (and on CUDA when present), from stored DICOM files to findings.

For each built-in detector, one synthetic study is written as DICOM (a CT head phantom of
300 x 512 x 512; a chest radiograph whose longest side is 3000 px), then each run
times what a worker does with it:
  load       dicomnode.analysis.volume.load_series: read, decode, sort along the normal, rescale, geometry
  infer      the detector's probability maps: resample, window/normalise, network
  findings   regions back on the volume grid, masks, measurements, calibration
The peer is `pydicom-stack`: pydicom reads every file and stacks the raw pixel arrays, the least
any tool must do to look at the study. Figures: median of --runs, and the ratio total / peer.
Targets from issue 17: within 1.5x of the 2.4 s (CT head) and 0.08 s (radiograph) measured before the
sliding window and the canonical orientation, on 2 cores (reported, not asserted).

Usage: python bench/inference.py [--runs 5] [--slices 300] [--size 512] [--xr 3000] [--threads 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pydicom
import torch

from dicomnode.analysis.volume import load_series
from dicomnode.demo.synthetic import SeriesSpec, radiograph, write_volume_series
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from models.registry import builtin_spec

OUT = Path(__file__).resolve().parent / "out"
TARGETS_S = {"ct-hemorrhage": 1.5 * 2.4, "cxr-pneumothorax": 1.5 * 0.08}


def write_ct(folder: Path, slices: int, size: int) -> list[Path]:
    """The phantom at its own 5 x 1.5 x 1.5 mm grid, interpolated to a thin-slice acquisition of the same head."""
    p = ct_head(np.random.default_rng(7), bleeds=1)
    extent = [n * s for n, s in zip(p.hu.shape, p.spacing_mm, strict=True)]
    hu = torch.nn.functional.interpolate(
        torch.from_numpy(p.hu)[None, None], size=(slices, size, size), mode="trilinear"
    )[0, 0].numpy()
    spec = SeriesSpec(
        n_slices=slices,
        rows=size,
        columns=size,
        slice_thickness_mm=extent[0] / slices,
        pixel_spacing_mm=extent[1] / size,
        body_part="HEAD",
    )
    return write_volume_series(spec, hu, folder)


def write_xr(folder: Path, size: int) -> list[Path]:
    p = chest_radiograph(np.random.default_rng(7), size=size, pneumothorax=True)  # drawn at the detector's size
    image = p.image
    spec = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=p.spacing_mm[0])
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "xr.dcm"
    radiograph(spec, image).save_as(path, enforce_file_format=True)
    return [path]


def peer(paths: list[Path]) -> float:
    start = time.perf_counter()
    np.stack([pydicom.dcmread(p).pixel_array for p in paths])
    return time.perf_counter() - start


def ours(paths: list[Path], model) -> dict[str, float]:  # noqa: ANN001
    t0 = time.perf_counter()
    volume = load_series(paths, "bench")
    t1 = time.perf_counter()
    maps = model.probability_maps(volume)
    t2 = time.perf_counter()
    found = model.analyse(volume).findings  # maps again + findings; findings time = this minus infer
    t3 = time.perf_counter()
    assert maps.max() >= 0 and found, "the planted lesion is found"
    infer = t2 - t1
    return {
        "load_s": t1 - t0,
        "infer_s": infer,
        "findings_s": max(0.0, (t3 - t2) - infer),
        "total_s": (t1 - t0) + (t3 - t2),
    }


def bench(name: str, paths: list[Path], device: str, runs: int) -> dict:
    model = builtin_spec(name).load(device)
    ours(paths, model)  # warm: first call allocates, loads kernels
    peers = [peer(paths) for _ in range(runs)]
    timings = [ours(paths, model) for _ in range(runs)]
    median = {k: round(statistics.median(t[k] for t in timings), 3) for k in timings[0]}
    peer_s = statistics.median(peers)
    return {
        **median,
        "pydicom_stack_s": round(peer_s, 3),
        "vs_pydicom_stack": round(median["total_s"] / peer_s, 2),
        "target_s": round(TARGETS_S[name], 3),
        "device": device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--xr", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=OUT / "inference.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results: dict = {"threads": args.threads, "ct_shape": [args.slices, args.size, args.size], "xr_size": args.xr}
    with tempfile.TemporaryDirectory() as tmp:
        studies = {
            "ct-hemorrhage": write_ct(Path(tmp) / "ct", args.slices, args.size),
            "cxr-pneumothorax": write_xr(Path(tmp) / "xr", args.xr),
        }
        for name, paths in studies.items():
            for device in devices:
                r = bench(name, paths, device, args.runs)
                results[f"{name}@{device}"] = r
                print(
                    f"{name:18} {device:5} total {r['total_s']:.3f} s (load {r['load_s']:.3f}, infer "
                    f"{r['infer_s']:.3f}, findings {r['findings_s']:.3f}); pydicom-stack {r['pydicom_stack_s']:.3f}"
                    f" s; {r['vs_pydicom_stack']}x peer; target {r['target_s']} s"
                )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
