"""The scope gate: only series a model accepts reach it. A routing rule wider than the model must not feed MR
to a CT network; a study with nothing in scope fails for good and says why."""

from __future__ import annotations

import logging

from pydicom import Dataset

from dicomnode.errors import DicomnodeError
from models.image import ImageVolume

Loaded = tuple[ImageVolume, list[Dataset]]
log = logging.getLogger(__name__)


class OutOfScope(DicomnodeError):
    """The study is not what the model was made for; the message says why. The model is not run."""


def in_scope(loaded: list[Loaded], modalities: list[str] | None, model: str, job_id: int) -> list[Loaded]:
    """The loaded series of a modality the model accepts (all of them when it declares none)."""
    if modalities is None:
        return loaded
    kept = [(v, s) for v, s in loaded if v.modality.upper() in modalities]
    volumes = [v for v, _ in loaded]
    for v in volumes:
        if all(v is not k for k, _ in kept):
            log.warning(
                "job %d: series %s is %s; %s accepts %s: skipped",
                job_id,
                v.series_uid,
                v.modality or "of no modality",
                model,
                ", ".join(modalities),
            )
    if not kept:
        found = ", ".join(sorted({v.modality or "none" for v in volumes}))
        raise OutOfScope(f"model {model} accepts {', '.join(modalities)}; the routed series are {found}")
    return kept
