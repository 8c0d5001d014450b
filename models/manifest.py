"""Model manifests: what a model accepts, how its input is prepared, what it reports and how urgent it is.

One TOML file per model, validated when loaded; every error names the file
and the key. Torch-free, so the node can read manifests to route and rank.

    name = "ct-hemorrhage"
    version = "1.0.0"
    family = "ct"
    task = "segmentation"            # segmentation | detection | classification
    modalities = ["CT"]
    body_parts = ["HEAD", "BRAIN"]
    weights = "ct-hemorrhage.pt2"     # relative to the manifest
    format = "pt2"                   # pt2 (torch.export) | torchscript

    [preprocessing]
    window = { center = 40, width = 80 }
    spacing_mm = [5.0, 1.0, 1.0]      # resample to (slice, row, column) spacing
    input_size = [32, 128, 128]

    [[outputs]]
    label = "intracranial hemorrhage"
    code = { scheme = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }
    threshold = 0.5                  # probability at or above which a finding is reported
    urgency = 1.0                    # 0..1, weight of this finding in worklist ranking
"""

from __future__ import annotations

import hashlib
import tomllib
import uuid
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

_WEIGHTS_NAMESPACE = uuid.UUID("5b0e4a7c-9d8e-5f1a-8c3b-776569676874")  # fixed forever


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Code(_Strict):
    """A coded concept, e.g. SNOMED CT: scheme "SCT", value "1386000", meaning "Intracranial hemorrhage"."""

    scheme: str = Field(min_length=1, max_length=16)
    value: str = Field(min_length=1, max_length=64)
    meaning: str = Field(min_length=1, max_length=64)


class Window(_Strict):
    center: float
    width: float = Field(gt=0)


class Preprocessing(_Strict):
    window: Window | None = None
    spacing_mm: tuple[float, float, float] | None = None
    input_size: tuple[int, ...] | None = None

    @field_validator("spacing_mm")
    @classmethod
    def _positive_spacing(cls, spacing: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if spacing is not None and min(spacing) <= 0:
            raise ValueError("every spacing must be above 0 mm")
        return spacing

    @field_validator("input_size")
    @classmethod
    def _positive_size(cls, size: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if size is not None and (len(size) not in (2, 3) or min(size) < 1):
            raise ValueError("input_size is 2 or 3 positive integers")
        return size


class OutputClass(_Strict):
    label: str = Field(min_length=1, max_length=64)
    code: Code
    threshold: float = Field(ge=0.0, le=1.0)
    urgency: float = Field(ge=0.0, le=1.0)


class Manifest(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version: str = Field(min_length=1, max_length=64)
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    task: Literal["segmentation", "detection", "classification"]
    modalities: list[str] = Field(min_length=1)
    body_parts: list[str] = Field(default_factory=list)
    weights: str = Field(min_length=1)
    format: Literal["pt2", "torchscript"] = "pt2"
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    outputs: list[OutputClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _labels_unique(self) -> Manifest:
        labels = [o.label for o in self.outputs]
        if len(set(labels)) != len(labels):
            raise ValueError("output labels must be unique")
        return self


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and each bad key."""


def load_manifest(path: Path) -> Manifest:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read: {exc}") from None
    try:
        manifest = Manifest(**data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in exc.errors()]
        raise ManifestError(f"{path}: " + "; ".join(problems)) from None
    if not (path.parent / manifest.weights).is_file():
        raise ManifestError(f"{path}: weights: file not found: {path.parent / manifest.weights}")
    return manifest


def weights_uid(weights: Path) -> str:
    """A UID that changes whenever the weights change (2.25 + a name-based UUID of their SHA-256)."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    return f"2.25.{uuid.uuid5(_WEIGHTS_NAMESPACE, digest).int}"
