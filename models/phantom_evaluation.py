"""Evaluate and calibrate the built-in detectors on held-out phantoms (seeds far from training's).

A case is an image volume, whether it is positive, the true mask when there
is one, and attributes to break the figures down by (acquisition, lesion).
The same scoring serves phantoms and a user's labelled DICOM folder
(dicomnode/analysis/folder.py): per case a row (study, score, label, finding
count, volume); over the set the figures with 95% confidence intervals,
subgroups, lesion-level sensitivity and the volume error; an unreadable or
out-of-scope study is counted and listed, never scored.
"""

from __future__ import annotations

import csv
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from models.detector import Detector
from models.evaluation import dice, fit_below_scale, fit_platt, report, roc_curve, wilson
from models.image import ImageVolume, axial_affine
from models.manifest import Calibration, Manifest

EVALUATION_SEED = 1_000_000
CALIBRATION_SEED = 500_000  # validation: neither training's seed nor evaluation's
TEST_SEED = 2_000_000  # the held-out set the test suite checks the targets on


@dataclass(frozen=True)
class Case:
    volume: ImageVolume | None  # None: the study could not be read (see problem)
    positive: bool
    truth: np.ndarray | None = None  # the true mask, for Dice, lesion-level sensitivity and volume error
    study: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    problem: str | None = None  # why the case is not scored: unreadable or out of scope
    refused: bool = False  # out of scope (the scope gate's answer), rather than unreadable
    lesions: np.ndarray | None = None  # each true voxel's lesion (1, 2, ...), where the generator knows them


@dataclass(frozen=True)
class Row:
    """One case's result, as the per-case CSV has it."""

    study: str
    label: bool
    score: float | None
    findings: int
    volume_ml: float | None  # the reported findings' volume (mL; area in mm2 for a projection) summed
    true_volume_ml: float | None
    lesions: int  # true lesions (connected regions of the truth)
    lesions_found: int
    attributes: dict[str, str]
    problem: str | None = None
    refused: bool = False


@dataclass(frozen=True)
class Scored:
    rows: list[Row]
    dices: list[float]
    hits: list[bool]  # positive cases whose top finding overlaps the truth

    @property
    def scored(self) -> list[Row]:
        return [r for r in self.rows if r.score is not None]

    @property
    def scores(self) -> np.ndarray:
        return np.array([r.score for r in self.scored], dtype=float)

    @property
    def labels(self) -> np.ndarray:
        return np.array([r.label for r in self.scored], dtype=bool)


def score_cases(detector: Detector, cases: Iterable[Case], on_case: Callable[[], None] | None = None) -> Scored:
    """The study score of the first output for each case (see Detector.analyse), and localisation; `on_case` is
    called after each case (progress)."""
    output = detector.manifest.outputs[0]
    rows, dices, hits = [], [], []
    for case in cases:
        if case.volume is None or case.problem is not None:
            rows.append(
                Row(case.study, case.positive, None, 0, None, None, 0, 0, case.attributes, case.problem, case.refused)
            )
        else:
            row, found = _score(detector, output.label, case)
            rows.append(row)
            if case.positive and case.truth is not None:
                if detector.manifest.task == "segmentation":
                    dices.append(dice(found, case.truth))
                hits.append(bool(found.any()) and bool((found & case.truth).any()))
        if on_case is not None:
            on_case()
    return Scored(rows, dices, hits)


def _score(detector: Detector, label: str, case: Case) -> tuple[Row, np.ndarray]:
    volume = case.volume
    analysis = detector.analyse(volume)
    findings = [f for f in analysis.findings if f.label == label]
    found = np.zeros(volume.array.shape, dtype=bool)
    for f in findings:
        box = tuple(slice(a, b) for a, b in zip(f.bbox[:3], f.bbox[3:], strict=True))
        found[box] |= f.mask if f.mask is not None else True
    size = [m.value for f in findings for m in f.measurements if m.name in ("volume", "area")]
    lesions = found_lesions = 0
    true_volume = None
    if case.truth is not None and case.truth.any():
        components = _lesions(case)
        lesions = len(set(np.unique(components)) - {0})
        found_lesions = len(set(np.unique(components[found & case.truth])) - {0})
        true_volume = float(case.truth.sum() * volume.voxel_ml) if volume.array.shape[0] > 1 else None
    row = Row(
        case.study,
        case.positive,
        float(analysis.scores[label]),
        len(findings),
        round(float(sum(size)), 3) if size else None,
        round(true_volume, 3) if true_volume is not None else None,
        int(lesions),
        int(found_lesions),
        case.attributes,
    )
    return row, found


def _lesions(case: Case) -> np.ndarray:
    """Each true voxel's lesion number: the generator's, else connected regions of the truth with fragments
    within 2 voxels of each other counted as one."""
    if case.lesions is not None:
        return np.where(case.truth, case.lesions, 0)
    components, _ = ndimage.label(ndimage.binary_dilation(case.truth, iterations=2))
    return np.where(case.truth, components, 0)


def figures(detector: Detector, scored: Scored) -> dict:
    """The report as a dict, with CIs, localisation, lesion-level sensitivity, volume error, subgroups, the cases
    not scored (unreadable, out of scope), and the ROC points (for the PNG)."""
    output = detector.manifest.outputs[0]
    if not scored.scored:
        raise ValueError(f"none of the {len(scored.rows)} studies could be scored: " + _problems(scored.rows))
    result = report(scored.scores, scored.labels, output.threshold, scored.dices).as_dict()
    if scored.hits:
        result["localised"] = round(float(np.mean(scored.hits)), 4)
    lesions = sum(r.lesions for r in scored.scored)
    if lesions:
        found = sum(r.lesions_found for r in scored.scored)
        result["lesion_sensitivity"] = round(found / lesions, 4)
        result["lesion_sensitivity_ci"] = [round(v, 4) for v in wilson(found, lesions)]  # type: ignore[union-attr]
        result["lesions"] = lesions
    errors = volume_errors(scored.scored)
    if errors is not None:
        result["volume_ratio"] = errors
    result["subgroups"] = subgroups(scored.scored, output.threshold)
    result["unreadable"] = [
        {"study": r.study, "problem": r.problem} for r in scored.rows if r.score is None and not r.refused
    ]
    result["out_of_scope"] = [{"study": r.study, "reason": r.problem} for r in scored.rows if r.refused]
    if result["auc"] is not None:
        fpr, tpr = roc_curve(scored.scores, scored.labels)
        result["roc"] = {"fpr": [round(float(v), 4) for v in fpr], "tpr": [round(float(v), 4) for v in tpr]}
    return result


def volume_errors(rows: list[Row]) -> dict | None:
    """Reported volume / true volume over positives with both: median, 10th and 90th percentile, the share
    within +-25%."""
    ratios = np.array([r.volume_ml / r.true_volume_ml for r in rows if r.volume_ml and r.true_volume_ml])
    if len(ratios) == 0:
        return None
    p10, median, p90 = np.percentile(ratios, [10, 50, 90])
    within = float(np.mean(np.abs(ratios - 1) <= 0.25))
    return {
        "cases": len(ratios),
        "median": round(float(median), 3),
        "p10": round(float(p10), 3),
        "p90": round(float(p90), 3),
        "within_25_percent": round(within, 3),
    }


def subgroups(rows: list[Row], threshold: float) -> dict[str, dict[str, dict]]:
    """Per attribute and value: cases, positives, sensitivity and specificity with Wilson intervals."""
    groups: dict[str, dict[str, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for key, value in row.attributes.items():
            groups[key][value].append(row)
    out: dict[str, dict[str, dict]] = {}
    for key, values in sorted(groups.items()):
        out[key] = {}
        for value, members in sorted(values.items()):
            pos = [r for r in members if r.label]
            neg = [r for r in members if not r.label]
            tp = sum(r.score >= threshold for r in pos)  # type: ignore[operator]
            tn = sum(r.score < threshold for r in neg)  # type: ignore[operator]
            out[key][value] = {
                "cases": len(members),
                "positives": len(pos),
                "sensitivity": round(tp / len(pos), 4) if pos else None,
                "sensitivity_ci": [round(v, 4) for v in wilson(tp, len(pos))] if pos else None,  # type: ignore[union-attr]
                "specificity": round(tn / len(neg), 4) if neg else None,
                "specificity_ci": [round(v, 4) for v in wilson(tn, len(neg))] if neg else None,  # type: ignore[union-attr]
            }
    return out


def write_cases_csv(scored: Scored, path: Path) -> None:
    """One row per study: study, score, label, finding count, volume (mL, or area mm2 for a projection), true
    volume, lesions found, the attributes, and the problem of a study that was not scored."""
    keys = sorted({k for r in scored.rows for k in r.attributes})
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "study",
                "score",
                "label",
                "findings",
                "volume",
                "true_volume_ml",
                "lesions",
                "lesions_found",
                *keys,
                "problem",
            ]
        )
        for r in scored.rows:
            writer.writerow(
                [
                    r.study,
                    "" if r.score is None else f"{r.score:.4f}",
                    int(r.label),
                    r.findings,
                    "" if r.volume_ml is None else r.volume_ml,
                    "" if r.true_volume_ml is None else r.true_volume_ml,
                    r.lesions,
                    r.lesions_found,
                    *(r.attributes.get(k, "") for k in keys),
                    r.problem or "",
                ]
            )


def _problems(rows: list[Row]) -> str:
    return "; ".join(f"{r.study or '?'}: {r.problem}" for r in rows[:3] if r.problem)


def ct_head_cases(seed: int, count: int, max_voxels: float = 16e6) -> Iterator[Case]:
    """Heads at scanners' geometries (ct_geometry: field of view, matrix, slice thickness), half with bleeds."""
    from models.phantoms.ct_head_varied import ct_geometry, ct_head

    rng = np.random.default_rng(seed)
    for k in range(count):
        shape, spacing = ct_geometry(rng, max_voxels)
        p = ct_head(rng, shape=shape, spacing_mm=spacing)
        volume = ImageVolume(p.hu, p.spacing_mm, axial_affine(p.spacing_mm), "", "CT", ("",) * len(p.hu))
        sizes = [lesion.volume_ml for lesion in p.lesions]
        attributes = {
            "slice thickness (mm)": f"{spacing[0]:g}",
            "matrix": str(shape[1]),
            "field of view (mm)": "180-250" if shape[1] * spacing[1] < 250 else "250-320",
            "lesion size": "none" if not sizes else ("< 5 mL" if min(sizes) < 5 else ">= 5 mL"),
            "lesion kind": "none" if not p.lesions else ",".join(sorted({lesion.kind for lesion in p.lesions})),
        }
        yield Case(volume, bool(p.lesions), p.bleed_mask, f"phantom-{seed}-{k}", attributes, lesions=p.lesion_labels)


def chest_cases(seed: int, count: int, sizes: tuple[int, int] = (768, 1536)) -> Iterator[Case]:
    """Films at detector sizes (longest side drawn from `sizes`), half with a pneumothorax."""
    from models.phantoms.chest_xr import chest_radiograph

    rng = np.random.default_rng(seed)
    for k in range(count):
        p = chest_radiograph(rng, size=int(rng.integers(sizes[0], sizes[1] + 1)))
        spacing = (1.0, *p.spacing_mm)
        volume = ImageVolume(p.image[None], spacing, axial_affine(spacing), "", "DX", ("",))
        yield Case(volume, p.side is not None, p.pneumothorax_mask[None], f"phantom-{seed}-{k}", dict(p.acquisition))


def evaluate(model: Detector, cases: Iterable[Case], on_case: Callable[[], None] | None = None) -> dict:
    return figures(model, score_cases(model, cases, on_case))


def calibrate(detector: Detector, cases: Iterable[Case], manifest_path: Path) -> Calibration:
    """Fit the first output's calibration on `cases` (scored uncalibrated) and write it into the manifest: Platt
    scaling, then the factor for studies under the mask threshold (Calibration)."""
    raw = Detector(uncalibrated(detector.manifest), detector.net, str(detector.device), detector.uid)
    scored = score_cases(raw, cases)
    calibration = fit_calibration(scored.scores, scored.labels, detector.manifest.outputs[0].mask_threshold)
    write_calibration(manifest_path, calibration)
    return calibration


def fit_calibration(raw: np.ndarray, labels: np.ndarray, below: float) -> Calibration:
    slope, intercept = fit_platt(raw, labels)
    platt = Calibration(slope=round(slope, 4), intercept=round(intercept, 4))
    scale = fit_below_scale(raw, labels, platt.apply, below)
    return platt.model_copy(update={"below": below, "below_scale": round(scale, 4)})


def uncalibrated(manifest: Manifest) -> Manifest:
    outputs = [o.model_copy(update={"calibration": Calibration()}) for o in manifest.outputs]
    return manifest.model_copy(update={"outputs": outputs})


_CALIBRATION_LINE = re.compile(r"^calibration = \{[^}\n]*\}", re.MULTILINE)


def write_calibration(manifest_path: Path, calibration: Calibration) -> None:
    """Replace the one `calibration = {...}` line of a single-output manifest, keeping its comments."""
    text = manifest_path.read_text()
    if len(_CALIBRATION_LINE.findall(text)) != 1:
        raise ValueError(f"{manifest_path}: expected exactly one 'calibration = {{...}}' line to update")
    line = (
        f"calibration = {{ slope = {calibration.slope}, intercept = {calibration.intercept}, "
        f"below = {calibration.below}, below_scale = {calibration.below_scale} }}"
    )
    manifest_path.write_text(_CALIBRATION_LINE.sub(line, text))


def calibrate_builtin(name: str, cases: Iterable[Case]) -> dict:
    """After training a built-in: fit its calibration on validation phantoms and write it into its manifest."""
    from models.registry import builtin_spec

    spec = builtin_spec(name)
    return calibrate(spec.load("cpu"), cases, spec.manifest_path).model_dump()  # type: ignore[arg-type]
