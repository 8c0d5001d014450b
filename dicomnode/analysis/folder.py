"""Evaluate a model on a user's labelled DICOM folder (`dicomnode models evaluate NAME --dicom FOLDER`).

The folder holds DICOM files in any layout. Its labels are a CSV file (default
FOLDER/labels.csv) with a header and one row per study:

    study_instance_uid,positive
    1.2.826.0.1.3680043.8.498.1,1
    1.2.826.0.1.3680043.8.498.2,0

`positive` is 1/0 (or true/false, yes/no) for the model's first output. Each
study is scored on its largest series of a modality the model accepts.
Study-level figures only (AUC, sensitivity, specificity, calibration); Dice
would need masks, which folders do not carry yet.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from dicomnode.analysis.volume import load_series
from dicomnode.errors import DicomnodeError
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


def folder_cases(folder: Path, labels_path: Path, modalities: list[str]) -> Iterator[Case]:
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
        uid, paths = max(candidates.items(), key=lambda item: len(item[1]))
        yield Case(load_series(paths, uid), positive)


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
