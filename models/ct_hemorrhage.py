"""ct-hemorrhage: non-contrast CT head to a 3D segmentation of hyperdense intracranial bleeds.

Trained on procedural phantoms only (models/phantoms/ct_head.py): NOT clinically validated.
Inference resamples to the training spacing, windows, runs the U-Net, resamples the
probabilities back, and reports each connected region above the threshold.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from models.findings import Finding
from models.image import ImageVolume
from models.regions import connected_regions, region_finding
from models.unet3d import UNet3D, pad_to_multiple

NAME = "ct-hemorrhage"
VERSION = "0.1.0"
LABEL = "intracranial hemorrhage"
WEIGHTS = Path(__file__).resolve().parent / "weights" / "ct-hemorrhage.pt"
SPACING_MM = (5.0, 1.5, 1.5)  # (slice, row, column) the network was trained at
WINDOW = (-20.0, 180.0)  # HU mapped to 0..1: blood and brain apart, calcification brighter still
THRESHOLD = 0.5
MIN_VOLUME_ML = 0.05
MIN_MEAN_HU = 45.0  # a reported region must be blood-dense on average; the net alone over-calls bright parenchyma
BASE_CHANNELS = 8


def window(hu: np.ndarray) -> np.ndarray:
    lo, hi = WINDOW
    return np.clip((hu - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


class CtHemorrhageModel:
    name = NAME
    version = VERSION

    def __init__(self, device: str, weights: Path = WEIGHTS) -> None:
        self.device = torch.device(device)
        self.net = UNet3D(BASE_CHANNELS)
        self.net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        self.net.to(self.device).eval()

    def probabilities(self, volume: ImageVolume) -> np.ndarray:
        """Bleed probability per voxel of `volume` (same shape)."""
        factors = [s / t for s, t in zip(volume.spacing_mm, SPACING_MM, strict=True)]
        resampled = ndimage.zoom(volume.array, factors, order=1) if not np.allclose(factors, 1) else volume.array
        x = torch.from_numpy(window(resampled))[None, None].to(self.device)
        x, size = pad_to_multiple(x)
        with torch.inference_mode(), torch.autocast(self.device.type, enabled=self.device.type == "cuda"):
            prob = torch.sigmoid(self.net(x).float())[0, 0, : size[0], : size[1], : size[2]].cpu().numpy()
        if prob.shape != volume.array.shape:
            back = [o / n for o, n in zip(volume.array.shape, prob.shape, strict=True)]
            prob = np.clip(ndimage.zoom(prob, back, order=1), 0.0, 1.0)
            prob = _fit(prob, volume.array.shape)
        return prob

    def predict(self, volume: ImageVolume) -> list[Finding]:
        prob = self.probabilities(volume)
        findings = [region_finding(LABEL, prob, r, inside, volume.voxel_ml) for r, inside in _components(prob, volume)]
        return sorted(findings, key=lambda f: -f.score)


def _components(prob: np.ndarray, volume: ImageVolume) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Regions at or above the threshold, large and dense enough to report: (bounding slices, mask within)."""
    for region, inside in connected_regions(prob >= THRESHOLD):
        large = inside.sum() * volume.voxel_ml >= MIN_VOLUME_ML
        if large and volume.array[region][inside].mean() >= MIN_MEAN_HU:
            yield region, inside


def study_score(prob: np.ndarray, volume: ImageVolume) -> tuple[float, np.ndarray]:
    """The study's score (highest reported region, else just under the threshold at most) and the reported mask."""
    kept = np.zeros(prob.shape, dtype=bool)
    for region, inside in _components(prob, volume):
        kept[region] |= inside
    if kept.any():
        return float(prob[kept].max()), kept
    return float(min(prob.max(), np.nextafter(THRESHOLD, 0.0))), kept


def _fit(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Crop or edge-pad to exactly `shape` (zoom can be off by one voxel)."""
    array = array[tuple(slice(0, n) for n in shape)]
    pads = [(0, n - a) for n, a in zip(shape, array.shape, strict=True)]
    return np.pad(array, pads, mode="edge")


def load(device: str) -> CtHemorrhageModel:
    return CtHemorrhageModel(device)


def evaluate(model: CtHemorrhageModel, seed: int = 1_000_000, cases: int = 60) -> dict:
    """Study-level and voxel-level figures on phantoms from a seed far from training's."""
    from models.evaluation import dice, report
    from models.phantoms.ct_head import ct_head

    rng = np.random.default_rng(seed)
    scores, labels, dices = [], [], []
    for _ in range(cases):
        p = ct_head(rng)
        volume = ImageVolume(p.hu, p.spacing_mm, np.diag([*p.spacing_mm, 1.0]), "", "CT", ("",) * len(p.hu))
        score, kept = study_score(model.probabilities(volume), volume)
        scores.append(score)
        labels.append(bool(p.lesions))
        if p.lesions:
            dices.append(dice(kept, p.bleed_mask))
    return report(np.array(scores), np.array(labels), THRESHOLD, dices).as_dict()
