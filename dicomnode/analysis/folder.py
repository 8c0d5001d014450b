"""Evaluate a model on a user's labelled DICOM folder (`dicomnode models evaluate NAME --dicom FOLDER`).

The folder holds DICOM files in any layout. Its labels are a CSV file (default
FOLDER/labels.csv) with a header and one row per study:

    study_instance_uid,positive
    1.2.826.0.1.3680043.8.498.1,1
    1.2.826.0.1.3680043.8.498.2,0

`positive` is 1/0 (or true/false, yes/no) for the model's first output. Each
study is scored on the series of a modality the model accepts that the node
reads first (dicomnode/analysis/choice.py), after the node's own scope gate:
a study the node would refuse is listed as out of scope with its reason, one that
cannot be read is listed with its problem;
neither is scored, neither stops the evaluation. Study-level figures (AUC,
sensitivity, specificity, calibration, subgroups by manufacturer, slice
thickness, field of view, matrix and contrast); Dice would need masks, which
folders do not carry yet.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from dicomnode.analysis.choice import ranked
from dicomnode.analysis.scope import first_reason
from dicomnode.analysis.volume import StudyUnreadable, load_series_with_sources
from dicomnode.errors import DicomnodeError
from models.manifest import Manifest
from models.phantom_evaluation import Case

_TRUE, _FALSE = {"1", "true", "yes"}, {"0", "false", "no"}


class FolderError(DicomnodeError, ValueError):
    """The folder or its labels cannot be evaluated; the message names the file and line."""


def read_labels(path: Path) -> dict[str, bool]:
    try:
        rows = list(csv.DictReader(path.open(newline="")))
    except OSError as exc:
        raise FolderError(f"{path}: cannot read labels: {exc}") from None
    labels: dict[str, bool] = {}
    for line, row in enumerate(rows, start=2):
        uid, value = (row.get("study_instance_uid") or "").strip(), (row.get("positive") or "").strip().lower()
        if not uid or value not in _TRUE | _FALSE:
            raise FolderError(f"{path}:{line}: need study_instance_uid and positive (1/0, true/false, yes/no)")
        if uid in labels:
            raise FolderError(f"{path}:{line}: study {uid} is labelled twice")
        labels[uid] = value in _TRUE
    if not labels:
        raise FolderError(f"{path}: no labelled studies (header: study_instance_uid,positive)")
    return labels


def folder_cases(folder: Path, labels_path: Path, manifest: Manifest) -> Iterator[Case]:
    modalities = manifest.modalities
    labels = read_labels(labels_path)
    series = _index(folder, set(labels))
    missing = sorted(set(labels) - set(series))
    if missing:
        raise FolderError(
            f"{folder}: no images of {', '.join(modalities)} for {len(missing)} labelled studies, e.g. {missing[0]}"
        )
    for study, positive in labels.items():
        candidates = {uid: paths for (modality, uid), paths in series[study].items() if modality in modalities}
        if not candidates:
            raise FolderError(f"{folder}: study {study} has no series of {', '.join(modalities)}")
        uid = ranked(candidates, manifest)[0]  # the series the node reads first
        paths = candidates[uid]
        try:
            volume, sources = load_series_with_sources(paths, uid)
        except StudyUnreadable as exc:
            yield Case(None, positive, study=study, problem=str(exc))
            continue
        attributes = acquisition(sources[0], volume.array.shape, volume.spacing_mm)
        reason = first_reason(volume, sources, manifest)
        if reason is not None:
            yield Case(None, positive, study=study, attributes=attributes, problem=reason, refused=True)
            continue
        yield Case(volume, positive, study=study, attributes=attributes)


def acquisition(header: pydicom.Dataset, shape: tuple[int, ...], spacing: tuple[float, ...]) -> dict[str, str]:
    """What the figures are broken down by: manufacturer, slice thickness, field of view, matrix, contrast."""
    fov = max(shape[1] * spacing[1], shape[2] * spacing[2])
    return {
        "manufacturer": str(header.get("Manufacturer", "") or "unknown"),
        "slice thickness (mm)": f"{float(header.get('SliceThickness') or spacing[0]):g}" if shape[0] > 1 else "-",
        "field of view (mm)": f"{int(fov // 50 * 50)}-{int(fov // 50 * 50 + 50)}",
        "matrix": f"{shape[1]}x{shape[2]}",
        "contrast": "yes" if str(header.get("ContrastBolusAgent", "") or "").strip() else "no",
    }


def _index(folder: Path, studies: set[str]) -> dict[str, dict[tuple[str, str], list[Path]]]:
    found: dict[str, dict[tuple[str, str], list[Path]]] = defaultdict(lambda: defaultdict(list))
    tags = ["StudyInstanceUID", "SeriesInstanceUID", "Modality"]
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=tags)
        except (InvalidDicomError, OSError, ValueError):
            continue  # labels.csv, README files, anything not DICOM
        study = str(ds.get("StudyInstanceUID", ""))
        if study in studies:
            found[study][(str(ds.get("Modality", "")), str(ds.get("SeriesInstanceUID", "")))].append(path)
    return found
