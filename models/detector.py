"""The one runner for every manifest-described model: prepare the input, run the network, report findings.

preprocess (resample to the manifest's spacing or size, window or normalise,
pad) -> network, whole or in sliding windows -> sigmoid -> per output class:
connected regions of the probability map -> back to the volume's own voxel
grid (refined on its values) -> grown into the image (optional) -> measurements, density and peak, calibration ->
candidates; those at or above the threshold are the findings. 2D models run
on batches of slices. CUDA runs under autocast; CPU under inference_mode with
the threads the worker set.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import expit

from models.findings import Finding, Measurement
from models.geometry import longest_diameter_mm
from models.growth import grow
from models.image import ImageVolume, central_field
from models.manifest import Manifest, OutputClass
from models.orientation import canonical
from models.partial_volume import measured
from models.peak import peak_value, peak_weight
from models.regions import connected_regions, cropped

if TYPE_CHECKING:
    from models.registry import ModelSpec

SLICE_BATCH = 16  # slices per forward pass for 2D models


@dataclass(frozen=True)
class Analysis:
    """Reported findings, and per output label the study's calibrated probability: that of its most probable
    candidate region (one too small to report counts just under the threshold), else of the highest voxel.
    A study scores at or above the decision threshold exactly when it has a finding, and negatives keep
    their order: no constant floor."""

    findings: list[Finding]
    scores: dict[str, float]


@dataclass(frozen=True)
class Candidate:
    probability: float  # calibrated, density weighed in
    finding: Finding | None  # None: too small (or, refined on the image, empty) to report


class ShapeMismatch(ValueError):
    """The network's output does not have the shape its manifest promises."""


class Detector:
    def __init__(self, manifest: Manifest, net: Callable[[torch.Tensor], torch.Tensor], device: str, uid: str) -> None:
        self.manifest = manifest
        self.name, self.version, self.uid = manifest.name, manifest.version, uid
        self.net = net
        self.device = torch.device(device)

    def predict(self, volume: ImageVolume) -> list[Finding]:
        return self.analyse(volume).findings

    def analyse(self, volume: ImageVolume) -> Analysis:
        """Findings and scores on the volume's own grid; a 3D model reads it in the canonical orientation."""
        if self.manifest.dims == 3:
            reoriented = canonical(volume)
            analysis = self._analyse(reoriented.volume)
            return Analysis([reoriented.finding_back(f) for f in analysis.findings], analysis.scores)
        return self._analyse(volume)

    def _analyse(self, volume: ImageVolume) -> Analysis:
        maps = self.probability_maps(volume)
        findings: list[Finding] = []
        scores: dict[str, float] = {}
        for output, prob in zip(self.manifest.outputs, maps, strict=True):
            below = math.nextafter(output.threshold, 0.0)  # unrounded, so it stays below the threshold
            candidates = list(self._candidates(output, prob, volume))
            reported = [c.finding for c in candidates if c.finding is not None and c.probability >= output.threshold]
            findings += _merged(output, reported, volume) if output.growth is not None else reported
            nothing = min(float(prob.max()), math.nextafter(output.mask_threshold, 0.0))  # no region at all
            scores[output.label] = max(
                (c.probability if c.finding is not None else min(c.probability, below) for c in candidates),
                default=min(output.calibration.apply(nothing), below),
            )
        return Analysis(sorted(findings, key=lambda f: -f.probability), scores)

    def probability_maps(self, volume: ImageVolume) -> np.ndarray:
        """Network probabilities (before calibration), one map per output: (C, *model grid), or (C, slices)
        for a classifier. The model grid spans the same extent as the volume."""
        x = torch.from_numpy(np.ascontiguousarray(volume.array, dtype=np.float32)).to(self.device)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            if self.manifest.dims == 3:
                prob = self._forward(x[None, None], volume.spacing_mm)[0]
            else:
                batches = [
                    self._forward(x[i : i + SLICE_BATCH, None], volume.spacing_mm[1:])
                    for i in range(0, len(x), SLICE_BATCH)
                ]
                prob = torch.cat(batches).transpose(0, 1)  # (C, slices, ...)
        return prob.float().cpu().numpy()

    def _forward(self, x: torch.Tensor, spacing: tuple[float, ...]) -> torch.Tensor:
        """(N, 1, *spatial) in modality units -> (N, C, *model grid) or (N, C) probabilities."""
        patch = self.manifest.preprocessing.patch_size
        if patch is not None and self.manifest.task != "classification":
            return torch.sigmoid(
                self._sliding_window(map_intensity(self.manifest, resample(self.manifest, x, spacing)), patch)
            )
        padded, size = prepare(self.manifest, x, spacing)
        logits = self.net(padded)
        expected = len(self.manifest.outputs)
        if self.manifest.task == "classification":
            if tuple(logits.shape) != (len(padded), expected):
                raise ShapeMismatch(
                    f"{self.name}: classifier output {tuple(logits.shape)}, expected ({len(padded)}, "
                    f"{expected}) for input {tuple(padded.shape)}"
                )
            return torch.sigmoid(logits.float())
        if (
            logits.ndim != padded.ndim
            or tuple(logits.shape[:2]) != (len(padded), expected)
            or tuple(logits.shape[2:]) != tuple(padded.shape[2:])
        ):
            raise ShapeMismatch(
                f"{self.name}: output {tuple(logits.shape)} for input {tuple(padded.shape)}; "
                f"expected (N, {expected}, *spatial) with the input's spatial size"
            )
        crop = (slice(None), slice(None), *(slice(0, n) for n in size))
        return torch.sigmoid(logits[crop].float())

    def _sliding_window(self, x: torch.Tensor, patch: tuple[int, ...]) -> torch.Tensor:
        """Logits over any extent from windows the size the network was trained on (instance normalisation then
        sees the statistics it learnt), blended with Gaussian weights (MONAI); the volume's own size out."""
        from monai.inferers import sliding_window_inference

        logits = sliding_window_inference(
            x, patch, sw_batch_size=4, predictor=self.net, overlap=0.25, mode="gaussian", cval=float(x.min())
        )
        expected = len(self.manifest.outputs)
        if tuple(logits.shape[:2]) != (len(x), expected) or tuple(logits.shape[2:]) != tuple(x.shape[2:]):
            raise ShapeMismatch(
                f"{self.name}: output {tuple(logits.shape)} for input {tuple(x.shape)}; "
                f"expected (N, {expected}, *spatial) with the input's spatial size"
            )
        return logits.float()

    def _candidates(self, output: OutputClass, prob: np.ndarray, volume: ImageVolume):  # noqa: ANN202
        """Every connected region of the map as a candidate: its calibrated probability, density weighed in,
        and its finding when it is large enough to report."""
        if self.manifest.task == "classification":
            finding = self._whole_image_finding(output, prob, volume)
            yield Candidate(finding.probability, finding)
            return
        scale = [n / m for n, m in zip(volume.array.shape, prob.shape, strict=True)]
        for region, inside in connected_regions(prob >= output.mask_threshold):
            raw = float(prob[region][inside].max())
            bbox, mask = _to_volume_grid(region, inside, prob, scale, volume.array.shape, output.mask_threshold)
            refined = _refined(output, bbox, mask, volume.array)
            core = refined if refined[1].any() else (bbox, mask)
            weight = _density_weight(output, *core, volume.array)
            if output.peak is not None:
                weight *= peak_weight(output.peak, peak_value(volume.array, volume.spacing_mm, *core, output.peak))
            weight *= _size_weight(output, refined[1], volume)
            probability = round(output.calibration.apply(raw * weight), 4)
            finding = None
            if weight > 0 and refined[1].any():
                region = refined
                if (
                    output.growth is not None
                    and probability >= output.threshold
                    and _reportable(output, refined[1], volume)
                ):
                    # scored and judged reportable as the network saw it, measured grown; one under the threshold
                    # is never reported, so growing it would be wasted
                    region = grow(volume.array, volume.spacing_mm, *refined, output.growth, output.value_range)
                    region = _measured(output, region, volume)
                finding = _finding(output, probability, *region, volume, self.manifest.task == "segmentation")
            yield Candidate(probability, finding)

    def _whole_image_finding(self, output: OutputClass, prob: np.ndarray, volume: ImageVolume) -> Finding:
        probability = round(output.calibration.apply(float(prob.max())), 4)
        shape = volume.array.shape
        centre = tuple((n - 1) / 2 for n in shape)
        return Finding(
            output.label,
            output.code,
            probability,
            (0, 0, 0, *shape),
            centre,  # type: ignore[arg-type]
            site=output.finding_site,
        )


def prepare(manifest: Manifest, x: torch.Tensor, spacing: tuple[float, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """The network's input for (N, 1, *spatial) modality values with `spacing` (mm): resampled, mapped to
    0..1, padded; and the model-grid size before padding. Training uses it too, so both see the same input."""
    x = map_intensity(manifest, resample(manifest, x, spacing))
    size = tuple(x.shape[2:])
    pad_multiple = manifest.preprocessing.pad_multiple
    if manifest.preprocessing.longest_side is not None:  # fit and pad: a square the network was trained on
        pad_multiple = (manifest.preprocessing.longest_side,) * len(size)
    if pad_multiple is not None:
        pads: list[int] = []
        for n, m in reversed(list(zip(size, pad_multiple, strict=True))):
            pads += [0, (-n) % m]
        if manifest.preprocessing.pad == "edge":
            x = F.pad(x, pads, mode="replicate")
        else:
            x = F.pad(x, pads, value=float(x.min()))
    return x, size


def resample(manifest: Manifest, x: torch.Tensor, spacing: tuple[float, ...]) -> torch.Tensor:
    """(N, 1, *spatial) onto the model grid: the manifest's spacing, its size, or its longest side."""
    prep = manifest.preprocessing
    size = tuple(x.shape[2:])
    if prep.input_size is not None:
        size = prep.input_size
    elif prep.spacing_mm is not None:
        size = tuple(max(1, round(n * s / t)) for n, s, t in zip(size, spacing, prep.spacing_mm, strict=True))
    elif prep.longest_side is not None:
        size = tuple(max(1, round(n * prep.longest_side / max(size))) for n in size)
    return _resize(x, size)


def map_intensity(manifest: Manifest, x: torch.Tensor) -> torch.Tensor:
    prep = manifest.preprocessing
    if prep.window is not None:
        return prep.window.apply(x)
    if prep.normalize == "percentile":
        return _percentile_normalise(x, x.flatten(1).float(), (0.0, 1.0))
    if prep.normalize == "central":
        return _percentile_normalise(x, central_field(x).flatten(1).float(), (-0.5, 1.5))
    if prep.normalize == "central-rank":
        return _rank_normalise(x, central_field(x).flatten(1).float())
    return x


def _resize(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Average when shrinking every axis (no aliasing), linear interpolation otherwise."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if all(n >= m for n, m in zip(x.shape[2:], size, strict=True)):
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="trilinear" if x.ndim == 5 else "bilinear", align_corners=False)


def _percentile_normalise(x: torch.Tensor, flat: torch.Tensor, clip: tuple[float, float]) -> torch.Tensor:
    """Per image: the 1st..99th percentile of `flat` (that image's reference pixels) to 0..1, then clipped."""
    sample = _reference_sample(flat)
    low = torch.quantile(sample, 0.01, dim=1)
    high = torch.quantile(sample, 0.99, dim=1)
    shape = (-1,) + (1,) * (x.ndim - 1)
    return ((x - low.view(shape)) / (high - low).clamp(min=1e-6).view(shape)).clamp(*clip)


def _rank_normalise(x: torch.Tensor, central: torch.Tensor) -> torch.Tensor:
    """Per image, each value by its rank: among the central field's values (its 1st..99th percentile to 0..1),
    and beyond them among the whole image's (down to -0.5 and up to 1.5). Any grey-level curve that keeps the
    order of values (a gamma, a film's look-up table) then gives the network the same input."""
    out = torch.empty(x.shape, dtype=torch.float32)
    for i in range(x.shape[0]):
        values = x[i].float()
        field = _reference_sample(central[i]).sort().values
        image = _reference_sample(values.flatten()).sort().values
        low, high = (field[int(q * (len(field) - 1))] for q in (0.01, 0.99))
        inside = (_rank(field, values) - 0.01) / 0.98
        in_image, low_share, high_share = _rank(image, values), _rank(image, low), _rank(image, high)
        darker = -0.5 * (low_share - in_image) / low_share.clamp(min=1e-6)
        brighter = 1 + 0.5 * (in_image - high_share) / (1 - high_share).clamp(min=1e-6)
        out[i] = torch.where(inside < 0, darker.clamp(max=0), torch.where(inside > 1, brighter.clamp(min=1), inside))
    return out.clamp(-0.5, 1.5)


def _reference_sample(flat: torch.Tensor) -> torch.Tensor:
    """Every k-th of an image's reference values (last axis), at most about 65,536: enough for its percentiles."""
    return flat[..., :: max(1, flat.shape[-1] // 65536)].float()


def _rank(sorted_values: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """The share of `sorted_values` below each value, ties counted half (a flat region keeps one rank)."""
    below = torch.searchsorted(sorted_values, values, right=False)
    up_to = torch.searchsorted(sorted_values, values, right=True)
    return (below + up_to).float() / (2 * len(sorted_values))


def _to_volume_grid(
    region: tuple[slice, ...],
    inside: np.ndarray,
    prob: np.ndarray,
    scale: list[float],
    shape: tuple[int, ...],
    threshold: float,
) -> tuple[tuple[int, ...], np.ndarray]:
    """A region found on the model grid as a bounding box and mask on the volume's grid."""
    if all(s == 1.0 for s in scale):
        bbox = tuple(r.start for r in region) + tuple(r.stop for r in region)
        return bbox, inside
    lo = [max(0, math.floor(r.start * s)) for r, s in zip(region, scale, strict=True)]
    hi = [min(n, max(l0 + 1, math.ceil(r.stop * s))) for r, s, n, l0 in zip(region, scale, shape, lo, strict=True)]
    size = tuple(h - l0 for l0, h in zip(lo, hi, strict=True))
    crop = torch.from_numpy(np.where(inside, prob[region], 0.0).astype(np.float32))[None, None]
    mask = F.interpolate(crop, size=size, mode="trilinear", align_corners=False)[0, 0].numpy() >= threshold
    if not mask.any():  # a sliver thinner than a voxel of the volume after interpolation: keep its nearest voxels
        mask = F.interpolate(torch.from_numpy(inside.astype(np.float32))[None, None], size=size)[0, 0].numpy() > 0
    return cropped(lo, mask)


def _refined(
    output: OutputClass, bbox: tuple[int, ...], mask: np.ndarray, values: np.ndarray
) -> tuple[tuple[int, ...], np.ndarray]:
    """The region's mask kept to voxels whose lightly smoothed value lies in the output's value range (the
    network's map is smoother than the lesion); unchanged without a range, empty when nothing is left."""
    if output.value_range is None:
        return bbox, mask
    from scipy import ndimage

    crop = values[tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))]
    smooth = ndimage.gaussian_filter(crop.astype(np.float32), sigma=(0.0, 0.7, 0.7))
    low, high = output.value_range
    kept = mask & (smooth >= low) & (smooth <= high)
    if not kept.any():
        return bbox, kept
    return cropped(bbox[:3], kept)


def _density_weight(output: OutputClass, bbox: tuple[int, ...], mask: np.ndarray, values: np.ndarray) -> float:
    """How much the region's density supports it: a logistic factor of its mean value around min_mean_value
    (1 without one; 0 or 1 for a hard cut, softness 0)."""
    if output.min_mean_value is None:
        return 1.0
    mean = float(values[tuple(slice(a, b) for a, b in zip(bbox[:3], bbox[3:], strict=True))][mask].mean())
    if output.mean_value_softness == 0:
        return 1.0 if mean >= output.min_mean_value else 0.0
    return float(expit((mean - output.min_mean_value) / output.mean_value_softness))


def _size(output: OutputClass, mask: np.ndarray, volume: ImageVolume) -> tuple[float, float]:
    """The region's size and the smallest one reported: area (mm2) on a projection image, else volume (mL)."""
    voxels = int(mask.sum())
    if volume.array.shape[0] == 1:
        return voxels * volume.spacing_mm[1] * volume.spacing_mm[2], output.min_area_mm2
    return voxels * volume.voxel_ml, output.min_volume_ml


def _reportable(output: OutputClass, mask: np.ndarray, volume: ImageVolume) -> bool:
    size, minimum = _size(output, mask, volume)
    return size >= minimum


def _measured(
    output: OutputClass, region: tuple[tuple[int, ...], np.ndarray], volume: ImageVolume
) -> tuple[tuple[int, ...], np.ndarray]:
    """The grown region recut to its partial-volume sum (when the output asks for it); the grown region when that
    would fall under the reporting size, since a region judged reportable stays reported."""
    if output.growth is None or output.growth.partial_volume_mm <= 0:
        return region
    recut = measured(volume.array, volume.spacing_mm, *region, output.growth)
    return recut if _reportable(output, recut[1], volume) else region


def _size_weight(output: OutputClass, mask: np.ndarray, volume: ImageVolume) -> float:
    """How much the region's size supports it: 1 - exp(-size / minimum reportable size), so a speck ranks below
    a lesion of the same peak probability (1 without a minimum)."""
    size, minimum = _size(output, mask, volume)
    return 1.0 - math.exp(-size / minimum) if minimum > 0 else 1.0


def _finding(
    output: OutputClass,
    probability: float,
    bbox: tuple[int, ...],
    mask: np.ndarray,
    volume: ImageVolume,
    keep_mask: bool,
) -> Finding | None:
    """The finding for one region, or None when it is too small to report."""
    size, minimum = _size(output, mask, volume)
    if size < minimum:
        return None
    diameter = Measurement("longest diameter", round(longest_diameter_mm(mask, volume.spacing_mm[1:]), 1), "mm")
    if volume.array.shape[0] == 1:  # a projection image: an area, not a volume
        measurements = (Measurement("area", round(size, 1), "mm2"), diameter)
    else:
        measurements = (Measurement("volume", round(size, 3), "ml"), diameter)
    centre = tuple(round(lo + float(c), 2) for lo, c in zip(bbox[:3], np.argwhere(mask).mean(axis=0), strict=True))
    return Finding(
        output.label,
        output.code,
        probability,
        bbox,
        centre,
        measurements,  # type: ignore[arg-type]
        mask if keep_mask else None,
        output.finding_site,
    )


def _merged(output: OutputClass, findings: list[Finding], volume: ImageVolume) -> list[Finding]:
    """Grown regions that share voxels are one lesion (two fragments the network saw of one subdural grow into the
    same crescent): one finding, with the higher probability, measured once."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: -f.probability):
        while (other := next((k for k in kept if _overlap(k, finding)), None)) is not None:
            kept.remove(other)
            finding = _union(output, other, finding, volume)
        kept.append(finding)
    return kept


def _overlap(a: Finding, b: Finding) -> bool:
    lo = [max(p, q) for p, q in zip(a.bbox[:3], b.bbox[:3], strict=True)]
    hi = [min(p, q) for p, q in zip(a.bbox[3:], b.bbox[3:], strict=True)]
    if any(h <= low for low, h in zip(lo, hi, strict=True)) or a.mask is None or b.mask is None:
        return False
    window = [tuple(slice(low - o, h - o) for low, h, o in zip(lo, hi, f.bbox[:3], strict=True)) for f in (a, b)]
    return bool((a.mask[window[0]] & b.mask[window[1]]).any())


def _union(output: OutputClass, a: Finding, b: Finding, volume: ImageVolume) -> Finding:
    lo = tuple(min(p, q) for p, q in zip(a.bbox[:3], b.bbox[:3], strict=True))
    hi = tuple(max(p, q) for p, q in zip(a.bbox[3:], b.bbox[3:], strict=True))
    mask = np.zeros(tuple(h - low for low, h in zip(lo, hi, strict=True)), dtype=bool)
    for f in (a, b):
        mask[tuple(slice(p - o, q - o) for p, q, o in zip(f.bbox[:3], f.bbox[3:], lo, strict=True))] |= f.mask
    union = _finding(output, max(a.probability, b.probability), lo + hi, mask, volume, keep_mask=True)
    assert union is not None  # larger than either part, so above the minimum size
    return union


def build_network(manifest: Manifest, weights: Path | None, device: str = "cpu") -> torch.nn.Module:
    if manifest.format == "pt2":
        return torch.export.load(str(weights)).module()
    if manifest.format == "torchscript":
        return torch.jit.load(str(weights), map_location=device)
    module_name, _, attr = (manifest.network or "").partition(":")
    net = getattr(importlib.import_module(module_name), attr)(**manifest.network_args)
    if weights is not None:
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net


def load(spec: ModelSpec, device: str) -> Detector:
    """Build the network a manifest describes (torch.export, TorchScript, or a Python class + state dict)."""
    if spec.manifest is None:
        raise ValueError(f"model {spec.name} has no manifest")
    net = build_network(spec.manifest, spec.weights_path, device).to(device)
    with contextlib.suppress(NotImplementedError):  # torch.export modules refuse eval(): export in eval mode
        net.eval()
    return Detector(spec.manifest, net, device, spec.uid)
