"""`dicomnode models check PATH`: load a model folder and run it once on a generated sample.

Catches what would otherwise fail on the first real study: a bad manifest,
weights that do not load, an output of the wrong shape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.image import ImageVolume, axial_affine
from models.manifest import ManifestError
from models.registry import ModelSpec


class ModelCheckFailed(Exception):
    """The model folder cannot be used; the message says why."""


@dataclass(frozen=True)
class CheckReport:
    name: str
    version: str
    uid: str
    sample: str
    probability_maps: tuple[int, ...]
    findings: int
    seconds: float


def check_model(path: Path, device: str = "cpu") -> CheckReport:
    """Raises ModelCheckFailed (a ManifestError for a bad manifest) naming the problem."""
    manifest_path = path / "manifest.toml" if path.is_dir() else path
    if not manifest_path.is_file():
        raise ManifestError(f"{manifest_path}: no manifest.toml here")
    spec = ModelSpec.from_manifest(manifest_path)
    try:
        detector = spec.load(device)
    except Exception as exc:
        raise ModelCheckFailed(f"{spec.name}: cannot load {spec.weights_path}: {type(exc).__name__}: {exc}") from exc
    volume, what = sample_volume(spec)
    start = time.perf_counter()
    try:
        maps = detector.probability_maps(volume)
        findings = detector.analyse(volume).findings
    except Exception as exc:
        raise ModelCheckFailed(f"{spec.name}: running on {what} failed: {type(exc).__name__}: {exc}") from exc
    return CheckReport(
        spec.name, spec.version, spec.uid, what, maps.shape, len(findings), round(time.perf_counter() - start, 3)
    )


def sample_volume(spec: ModelSpec) -> tuple[ImageVolume, str]:
    """A phantom of the model's modality when there is one (CT head, chest radiograph), else noise."""
    rng = np.random.default_rng(0)
    modalities = set(spec.manifest.modalities) if spec.manifest else set()
    if "CT" in modalities:
        from models.phantoms.ct_head import ct_head

        p = ct_head(rng, bleeds=1)
        array, spacing, what = p.hu, p.spacing_mm, f"a CT head phantom {p.hu.shape}"
    elif modalities & {"CR", "DX"}:
        from models.phantoms.chest_xr import chest_radiograph

        p = chest_radiograph(rng, pneumothorax=True)
        array, spacing, what = p.image[None], (1.0, *p.spacing_mm), f"a chest radiograph phantom {p.image.shape}"
    else:
        array, spacing = rng.normal(size=(16, 128, 128)).astype(np.float32), (2.0, 1.0, 1.0)
        what = "random noise (16, 128, 128)"
    volume = ImageVolume(array, spacing, axial_affine(spacing), "", next(iter(modalities), ""), ("",) * len(array))
    return volume, what
