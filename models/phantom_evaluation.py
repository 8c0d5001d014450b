"""Evaluate and calibrate the built-in detectors on held-out phantoms (seeds far from training's).

A case is an image volume, whether it is positive, and the true mask when
there is one. The same scoring serves phantoms and a user's labelled DICOM
folder (workers/folder_evaluation.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.detector import Detector
from models.evaluation import dice, fit_platt, report, roc_curve
from models.image import ImageVolume
from models.manifest import Calibration, Manifest

EVALUATION_SEED = 1_000_000
CALIBRATION_SEED = 500_000  # validation: neither training's seed nor evaluation's


@dataclass(frozen=True)
class Case:
    volume: ImageVolume
    positive: bool
    truth: np.ndarray | None = None  # the true mask, for segmenters' Dice


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray
    labels: np.ndarray
    dices: list[float]
    hits: list[bool]  # positive cases whose top finding overlaps the truth


def score_cases(detector: Detector, cases: Iterable[Case], on_case: Callable[[], None] | None = None) -> Scored:
    """The study score of the first output for each case (see Detector.analyse), and localisation; `on_case` is
    called after each case (progress)."""
    label = detector.manifest.outputs[0].label
    scores, labels, dices, hits = [], [], [], []
    for case in cases:
        analysis = detector.analyse(case.volume)
        scores.append(analysis.scores[label])
        labels.append(case.positive)
        if case.positive and case.truth is not None:
            found = np.zeros(case.volume.array.shape, dtype=bool)
            for f in analysis.findings:
                box = tuple(slice(a, b) for a, b in zip(f.bbox[:3], f.bbox[3:], strict=True))
                found[box] |= f.mask if f.mask is not None else True
            if detector.manifest.task == "segmentation":
                dices.append(dice(found, case.truth))
            top = analysis.findings[:1]
            hits.append(bool(top) and bool((found & case.truth).any()))
        if on_case is not None:
            on_case()
    return Scored(np.array(scores), np.array(labels, dtype=bool), dices, hits)


def figures(detector: Detector, scored: Scored) -> dict:
    """The report as a dict, with localisation and the ROC points (for the PNG)."""
    output = detector.manifest.outputs[0]
    result = report(scored.scores, scored.labels, output.threshold, scored.dices).as_dict()
    if scored.hits:
        result["localised"] = round(float(np.mean(scored.hits)), 4)
    fpr, tpr = roc_curve(scored.scores, scored.labels)
    result["roc"] = {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]}
    return result


def ct_head_cases(seed: int, count: int) -> Iterator[Case]:
    from models.phantoms.ct_head import ct_head

    rng = np.random.default_rng(seed)
    for _ in range(count):
        p = ct_head(rng)
        volume = ImageVolume(p.hu, p.spacing_mm, np.diag([*p.spacing_mm, 1.0]), "", "CT", ("",) * len(p.hu))
        yield Case(volume, bool(p.lesions), p.bleed_mask)


def chest_cases(seed: int, count: int) -> Iterator[Case]:
    from models.phantoms.chest_xr import chest_radiograph

    rng = np.random.default_rng(seed)
    for _ in range(count):
        p = chest_radiograph(rng)
        spacing = (1.0, *p.spacing_mm)
        volume = ImageVolume(p.image[None], spacing, np.diag([*spacing, 1.0]), "", "DX", ("",))
        yield Case(volume, p.side is not None, p.pneumothorax_mask[None])


def evaluate_ct_hemorrhage(
    model: Detector, seed: int = EVALUATION_SEED, cases: int = 60, on_case: Callable[[], None] | None = None
) -> dict:
    return figures(model, score_cases(model, ct_head_cases(seed, cases), on_case))


def evaluate_cxr_pneumothorax(
    model: Detector, seed: int = EVALUATION_SEED, cases: int = 200, on_case: Callable[[], None] | None = None
) -> dict:
    return figures(model, score_cases(model, chest_cases(seed, cases), on_case))


def calibrate(detector: Detector, cases: Iterable[Case], manifest_path: Path) -> Calibration:
    """Fit Platt scaling of the first output on `cases` (scored uncalibrated) and write it into the manifest."""
    raw = Detector(uncalibrated(detector.manifest), detector.net, str(detector.device), detector.uid)
    scored = score_cases(raw, cases)
    slope, intercept = fit_platt(scored.scores, scored.labels)
    calibration = Calibration(slope=round(slope, 4), intercept=round(intercept, 4))
    write_calibration(manifest_path, calibration)
    return calibration


def uncalibrated(manifest: Manifest) -> Manifest:
    outputs = [o.model_copy(update={"calibration": Calibration()}) for o in manifest.outputs]
    return manifest.model_copy(update={"outputs": outputs})


_CALIBRATION_LINE = re.compile(r"^calibration = \{[^}\n]*\}", re.MULTILINE)


def write_calibration(manifest_path: Path, calibration: Calibration) -> None:
    """Replace the one `calibration = {...}` line of a single-output manifest, keeping its comments."""
    text = manifest_path.read_text()
    if len(_CALIBRATION_LINE.findall(text)) != 1:
        raise ValueError(f"{manifest_path}: expected exactly one 'calibration = {{...}}' line to update")
    line = f"calibration = {{ slope = {calibration.slope}, intercept = {calibration.intercept} }}"
    manifest_path.write_text(_CALIBRATION_LINE.sub(line, text))


def calibrate_builtin(name: str, cases: Iterable[Case]) -> dict:
    """After training a built-in: fit its calibration on validation phantoms and write it into its manifest."""
    from models.registry import builtin_spec

    spec = builtin_spec(name)
    return calibrate(spec.load("cpu"), cases, spec.manifest_path).model_dump()  # type: ignore[arg-type]
