"""Which series of a study a volumetric model reads when several are routed to it: the one a radiologist reads.

A CT head study holds the same anatomy several times over: thick and thin axials, a bone-kernel reconstruction,
sagittal and coronal reformats. Reading every one multiplies the time and the false positives (the study is
flagged when any series is, and a sharp kernel's noise looks like blood to a model trained on soft-tissue
images), and repeats each finding once per series. The series are ranked from one header each, best first:
not a localizer; an original acquisition before a derived one (Image Type); axial before other planes; a
soft-tissue kernel before a sharp one (Convolution Kernel, series description); the slice spacing nearest the
model's; the most images. The worker reads them in that order and keeps the first it can read and the scope
gate accepts (`analysis.series = "best"`; "all" reads every one). Ranking only orders: a kernel it cannot name
counts as soft, and a study with nothing but a bone series still has it read.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pydicom
from pydicom import Dataset

from dicomnode.analysis.scope import header_values, is_localizer
from models.manifest import Manifest

# Sharp reconstructions by name: the words anyone writes (also whole words of a series description), GE's
# BONE/BONEPLUS/LUNG/EDGE/DETAIL, and Siemens-style kernels numbered 60 and up (H60s, H70h, Hr64, Br68, J70h);
# soft-tissue ones are numbered 20-45.
_SHARP_WORD = re.compile(r"BONE|SHARP|LUNG|KNOCHEN", re.IGNORECASE)
_SHARP = re.compile(rf"{_SHARP_WORD.pattern}|EDGE|DETAIL|^[A-Z][a-z]?[6-9][0-9]", re.IGNORECASE)


def ranked(series: dict[str, list[Path]], manifest: Manifest) -> list[str]:
    """The series UIDs, the one the model should read first; each judged from its first file's header."""
    model_z = manifest.preprocessing.spacing_mm[0] if manifest.preprocessing.spacing_mm else None

    def key(uid: str) -> tuple:
        files = series[uid]
        header = _header(files[0]) if files else None
        if header is None:  # unreadable or empty: last; the loader says what is wrong if it gets there
            return (1, 0, 0, 0, 0, 0.0, 0, uid)
        return (0, *_rank(header, model_z), -len(files), uid)

    return sorted(series, key=key)


def _rank(header: Dataset, model_z: float | None) -> tuple[int, int, int, int, float]:
    image_type = header_values(header, "ImageType")
    derived = int(image_type[:1] == ["DERIVED"] or image_type[1:2] == ["SECONDARY"])
    axial, sharp = _axial(header), sharp_kernel(header)
    return int(is_localizer(header)), derived, int(not axial), int(sharp), _spacing_gap(header, model_z)


def sharp_kernel(header: Dataset) -> bool:
    """A bone, lung or edge-enhancing reconstruction, by its kernel or series description."""
    kernels = header_values(header, "ConvolutionKernel")
    words = str(header.get("SeriesDescription", "") or "").split()
    return any(_SHARP.search(k) for k in kernels) or any(_SHARP_WORD.fullmatch(w) for w in words)


def _axial(header: Dataset) -> bool:
    try:
        row, column = np.asarray(header.ImageOrientationPatient, dtype=float).reshape(2, 3)
    except (AttributeError, ValueError, TypeError):
        return True  # no orientation: nothing to prefer it less for
    normal = np.abs(np.cross(row, column))
    return bool(normal[2] >= normal.max())


def _spacing_gap(header: Dataset, model_z: float | None) -> float:
    """How far the slice spacing is from the model's, as a ratio (0: the same); unknown: after every known one."""
    if model_z is None:
        return 0.0
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            spacing = abs(float(header.get(keyword) or 0))
        except (TypeError, ValueError):
            continue
        if spacing > 0:
            return abs(math.log(spacing / model_z))
    return math.inf


def _header(path: Path) -> Dataset | None:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # any unreadable file: ranked last, the loader reports it
        return None
