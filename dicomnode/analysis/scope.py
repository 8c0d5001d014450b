"""The scope gate: only series a model was made for reach it. A routing rule wider than the model must not feed a
CT chest, a contrast study or an oblique reformat to a non-contrast head CT network: it would answer anyway
("intracranial hemorrhage, 2 litres"). Every check reads the headers or a cheap image statistic, before the
model runs; a series that fails one is skipped with its reason, and a study with nothing left is out of scope,
with the reasons, never a finding. A 3D model's series is checked as the model will read it: in the canonical
orientation (models/orientation.py), so sagittal and coronal reconstructions pass and oblique ones do not."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable

import numpy as np
from pydicom import Dataset
from pydicom.multival import MultiValue
from scipy import ndimage

from dicomnode.errors import DicomnodeError
from models.image import ImageVolume, central_field
from models.manifest import Manifest
from models.orientation import Oblique, canonical

Loaded = tuple[ImageVolume, list[Dataset]]
log = logging.getLogger(__name__)

# Body regions, each with the Body Part Examined values (PS3.16 Annex L) and description words that name it.
REGIONS: dict[str, set[str]] = {
    "HEAD": {"HEAD", "BRAIN", "SKULL", "CRANIUM", "CEREBRUM", "HEADNECK", "ORBIT", "SINUS", "IAC", "TEMPORALBONE"},
    "NECK": {"NECK", "CSPINE", "LARYNX", "THYROID"},
    "CHEST": {"CHEST", "THORAX", "LUNG", "LUNGS", "RIB", "RIBS", "TSPINE", "HEART", "CARDIAC", "CHESTABDOMEN"},
    "ABDOMEN": {"ABDOMEN", "ABD", "PELVIS", "LIVER", "KIDNEY", "LSPINE", "CHESTABDOMEN", "ABDOMENPELVIS"},
    "EXTREMITY": {"HAND", "WRIST", "ELBOW", "ARM", "SHOULDER", "HIP", "KNEE", "LEG", "ANKLE", "FOOT", "EXTREMITY"},
}
FILMS = {"CR", "DX", "RG"}  # projection radiographs: computed, digital, radiographic imaging
FILM_SIDE = 128  # a film's lung fields are looked for at this size (longest side, pixels)
LUNG_FIELD_MIN = 0.2  # how far down the film a lung field must reach, at least, on each side
_WORD = re.compile(r"[A-Z]+")
_NO_CONTRAST = re.compile(r"\b(without|w/o|wo|non[- ]?contrast|no contrast|nativ|plain|nc)\b", re.IGNORECASE)
_CONTRAST = re.compile(r"\b(contrast|c\+|cta|angio\w*|post[- ]?contrast|enhanced|arterial|venous|iv)\b", re.IGNORECASE)


class OutOfScope(DicomnodeError):
    """The study is not what the model was made for; the message says why. The model is not run.
    `sources`: the headers of a refused series, for the SR that says so."""

    def __init__(self, message: str, sources: list[Dataset] | None = None) -> None:
        super().__init__(message)
        self.sources = sources or []


def in_scope(
    loaded: Iterable[Loaded], manifest: Manifest | None, model: str, job_id: int, first_only: bool = False
) -> list[Loaded]:
    """The loaded series the model was made for (all of them when it has no manifest); with `first_only`, the
    first one only, and no series after it is loaded. Raise OutOfScope when none is, naming each series' reason."""
    kept, reasons, first_sources = [], [], None
    for volume, sources in loaded:
        first_sources = sources if first_sources is None else first_sources
        reason = None if manifest is None else first_reason(volume, sources, manifest)
        if reason is None:
            kept.append((volume, sources))
            if first_only:
                break
            continue
        reasons.append(reason)
        log.warning("job %d: series %s not for %s: %s", job_id, volume.series_uid, model, reason)
    if not kept:
        raise OutOfScope(f"not for {model}: {'; '.join(dict.fromkeys(reasons))}", first_sources)
    return kept


def first_reason(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """Why the series is out of the model's scope (the first check it fails), or None."""
    if manifest.dims == 3:
        try:
            volume = canonical(volume, contiguous=False).volume  # the checks only look: no copy
        except Oblique as exc:
            return str(exc)
    for check in CHECKS:
        reason = check(volume, sources, manifest)
        if reason is not None:
            return reason
    return None


def regions_of(terms: list[str]) -> set[str]:
    """The body regions some Body Part Examined values or description words name."""
    words = {w for t in terms for w in (t.upper().replace(" ", "").replace("_", ""), *_WORD.findall(t.upper()))}
    return {region for region, names in REGIONS.items() if words & names}


def _modality(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    accepted = [m.upper() for m in manifest.modalities]
    if volume.modality.upper() in accepted:
        return None
    return f"modality {volume.modality or 'none'}; the model accepts {', '.join(accepted)}"


def _body_part(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    wanted = regions_of(manifest.body_parts)
    if not wanted:
        return None
    header = sources[0]
    stated = str(header.get("BodyPartExamined", "") or "")
    found = regions_of([stated]) if stated else set()
    where = f"Body Part Examined is {stated}"
    if not found:  # no (known) body part: the descriptions may still name one
        texts = [str(header.get(k, "") or "") for k in ("SeriesDescription", "StudyDescription", "ProtocolName")]
        found = regions_of(texts)
        where = f"the descriptions name {', '.join(sorted(found))}"
    if found and not found & wanted:
        return f"{where}; the model is for {', '.join(sorted(wanted))}"
    return None


def _contrast(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    if manifest.contrast == "any":
        return None
    given = _contrast_given(sources[0])
    if given is None or given == (manifest.contrast == "with"):
        return None
    return f"{'contrast' if given else 'no contrast'} given; the model is for studies {manifest.contrast} contrast"


def _contrast_given(header: Dataset) -> bool | None:
    """True/False when the header says whether contrast was given; None when it does not say."""
    agent = str(header.get("ContrastBolusAgent", "") or "").strip()
    if agent and agent.upper() not in ("NONE", "NO", "N", "0"):
        return True
    text = " ".join(str(header.get(k, "") or "") for k in ("SeriesDescription", "StudyDescription", "ProtocolName"))
    if _NO_CONTRAST.search(text):
        return False
    if _CONTRAST.search(text):
        return True
    return False if agent else None


def _view(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """A radiograph's View Position (PA, AP, LL, RL, ...) among the manifest's views; an empty one passes."""
    if not manifest.views:
        return None
    stated = str(sources[0].get("ViewPosition", "") or "").strip().upper()
    wanted = [v.upper() for v in manifest.views]
    if not stated or stated in wanted:
        return None
    return f"View Position is {stated}; the model reads {', '.join(wanted)} films"


def _field_of_view(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    limits = manifest.field_of_view_mm
    if limits is None:
        return None
    _, rows, columns = volume.array.shape
    fov = max(rows * volume.spacing_mm[1], columns * volume.spacing_mm[2])
    if limits[0] <= fov <= limits[1]:
        return None
    return f"field of view {fov:.0f} mm; the model expects {limits[0]:g}-{limits[1]:g} mm"


def _localizer(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """A localizer (scout, topogram) plans the scan; it is a projection, never the series to read."""
    if is_localizer(sources[0]):
        return "a localizer (scout) image: Image Type says LOCALIZER"
    return None


def is_localizer(header: Dataset) -> bool:
    return "LOCALIZER" in header_values(header, "ImageType")


def header_values(header: Dataset, keyword: str) -> list[str]:
    """An element's values, one or many, stripped and upper-case; none when it is absent or empty."""
    value = header.get(keyword)
    if value is None or value == "":
        return []
    values = list(value) if isinstance(value, list | tuple | MultiValue) else [value]
    return [str(v).strip().upper() for v in values]


def _slices(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """A 3D model reads a stack of a plausible spacing that covers the region (in the canonical orientation: along
    the body's long axis); a handful of slices or a sparse sampling is not what it learnt."""
    if manifest.dims != 3:
        return None
    count, spacing = volume.array.shape[0], volume.spacing_mm[0]
    if manifest.max_slice_mm is not None and spacing > manifest.max_slice_mm:
        return f"slices {spacing:g} mm apart; the model reads slices up to {manifest.max_slice_mm:g} mm apart"
    limits = manifest.coverage_mm
    extent = count * spacing
    if limits is not None and not limits[0] <= extent <= limits[1]:
        return f"{count} slices cover {extent:.0f} mm; the model expects {limits[0]:g}-{limits[1]:g} mm"
    return None


def _head_ct_image(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """On the middle slice of a head CT: bone around the head and no air inside it (lungs, bowel)."""
    if volume.modality.upper() != "CT" or "HEAD" not in regions_of(manifest.body_parts):
        return None
    hu = volume.array[volume.array.shape[0] // 2]
    body = ndimage.binary_fill_holes(hu > -300)
    inside = body.sum()
    if inside == 0:
        return "no body on the middle slice"
    air = ((hu < -400) & body).sum() / inside
    bone = ((hu > 300) & body).sum() / inside
    if air > 0.05:
        return f"{air:.0%} of the body on the middle slice is air (lungs or bowel): not a head"
    if bone < 0.02:
        return f"only {bone:.1%} of the body on the middle slice is bone: no skull around it"
    return None


def _chest_film_image(volume: ImageVolume, sources: list[Dataset], manifest: Manifest) -> str | None:
    """On a frontal chest film: a lung field on each side of the midline. Films only (a 2D model of CT slices is
    not checked)."""
    if volume.modality.upper() not in FILMS or volume.array.shape[0] != 1:
        return None
    if manifest.dims != 2 or "CHEST" not in regions_of(manifest.body_parts):
        return None
    heights = lung_field_heights(volume.array[0])
    for side, height in zip(("left", "right"), heights, strict=True):
        if height < LUNG_FIELD_MIN:
            return (
                f"no lung field on the image's {side}: dark over {height:.0%} of the film's height beside the "
                f"midline, a frontal chest film's lungs over {LUNG_FIELD_MIN:.0%} or more"
            )
    return None


def lung_field_heights(film: np.ndarray) -> tuple[float, float]:
    """How far a lung field reaches down the film on the image's left and on its right of the midline (its
    brightest column: the mediastinum, or an abdomen's spine), as a share of the film's height: the longest run
    of dark rows in the median column of each side. Dark: normalised as the chest model does it (the 1st..99th
    percentile of models.image.central_field to 0..1), blurred along the columns enough to merge the ribs that
    cross a lung, then between -0.2 (darker is air beside the body, which a lung is not) and 0.45. Bowel gas
    lies in pockets: shorter runs. No lung field at all (0, 0) on a film without a bright midline (a blank or
    uniform image) or under 32 pixels a side."""
    small = _shrunk(film.astype(np.float32), FILM_SIDE)
    rows, cols = small.shape
    if min(rows, cols) < 32:
        return 0.0, 0.0
    low, high = np.percentile(central_field(small), [1, 99])
    level = ndimage.gaussian_filter((small - low) / max(high - low, 1e-6), (4.0 * max(rows, cols) / FILM_SIDE, 1.0))
    dark = (level > -0.2) & (level < 0.45)
    middle = slice(int(cols * 0.25), int(cols * 0.75))
    brightness = level[int(rows * 0.2) : int(rows * 0.6), middle].mean(axis=0)
    if brightness.max() < 0.45:
        return 0.0, 0.0
    runs = _longest_runs(dark) / rows
    midline = middle.start + int(np.argmax(brightness))
    step = max(1, int(cols * 0.05))  # 5% of the width: off the film's edges, and off the midline's own column
    left, right = runs[step : max(step + 1, midline - step)], runs[min(midline + step, cols - step - 1) : cols - step]
    return float(np.median(left)), float(np.median(right))


def _shrunk(image: np.ndarray, side: int) -> np.ndarray:
    """The image averaged down to about `side` pixels along its longest side (never enlarged)."""
    factor = max(1, max(image.shape) // side)
    rows, cols = (n // factor * factor for n in image.shape)
    return image[:rows, :cols].reshape(rows // factor, factor, cols // factor, factor).mean(axis=(1, 3))


def _longest_runs(mask: np.ndarray) -> np.ndarray:
    """Per column, the length of the longest run of True rows."""
    index = np.arange(mask.shape[0])[:, None]
    last_false = np.maximum.accumulate(np.where(mask, -1, index), axis=0)
    return (index - last_false).max(axis=0)


CHECKS: list[Callable[[ImageVolume, list[Dataset], Manifest], str | None]] = [
    _modality,
    _localizer,
    _body_part,
    _contrast,
    _view,
    _field_of_view,
    _slices,
    _head_ct_image,
    _chest_film_image,
]
