"""Model manifests: what a model accepts, how its input is prepared, what it reports and how urgent it is.

One TOML file per model, validated when loaded; every error names the file
and the key. Torch-free, so the node can read manifests to route and rank.

    name = "my-ich"
    version = "1.0.0"
    family = "ct"                    # worker queue dicomnode.<family>
    task = "segmentation"            # segmentation | detection | classification
    dims = 3                         # the network sees volumes (3) or single slices/images (2)
    modalities = ["CT"]
    body_parts = ["HEAD", "BRAIN"]     # another region named by the header or descriptions: out of scope
    contrast = "without"             # with | without | any (default): what the header must not contradict
    field_of_view_mm = [150, 320]    # in-plane extent of the images it reads (optional)
    coverage_mm = [60, 320]          # 3D: extent along the body's long axis it reads (optional)
    max_slice_mm = 6.0               # 3D: the widest slice spacing it reads (optional)
    weights = "my-ich.pt2"           # relative to the manifest
    format = "pt2"                   # pt2 (torch.export) | torchscript | python (network below + state dict)

    [preprocessing]
    window = { center = 40, width = 80 }   # values mapped to 0..1; or normalize = "percentile" | "central"
                                           # | "central-rank"
    spacing_mm = [5.0, 1.0, 1.0]      # resample to (slice, row, column) spacing, or
    input_size = [32, 128, 128]       # resize to exactly this size (static-shape exports), or
    longest_side = 256                # 2D: resize keeping the aspect ratio
    pad = "edge"                      # fill padding with the edge pixels (default "minimum")
    patch_size = [16, 80, 80]         # optional: sliding-window inference in patches of this size

    [[outputs]]                      # one per output channel, in channel order
    label = "intracranial hemorrhage"
    code = { scheme = "SCT", value = "1386000", meaning = "Intracranial hemorrhage" }
    threshold = 0.5                  # calibrated probability at or above which a finding is reported
    urgency = 1.0                    # 0..1, weight of this finding in worklist ranking
    value_range = [40, 120]          # optional: a region keeps its voxels in this range (sizes from the image)
    growth = { margin_mm = 40, background = [15, 45], barrier = 300 }  # optional: grow regions into the image
    peak = { max_value = 110, softness = 5, barrier = 300 }  # optional: weigh down regions denser than a lesion is

The network takes (N, 1, *spatial) float32 and returns logits: (N, C, *spatial)
for segmentation and detection, (N, C) for classification, C = len(outputs).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
import uuid
from pathlib import Path
from typing import Any, Literal

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

    def apply(self, values: Any) -> Any:
        """Map center - width/2 .. center + width/2 to 0..1, clipped (numpy array or torch tensor)."""
        low = self.center - self.width / 2
        return ((values - low) / self.width).clip(0.0, 1.0)


class Preprocessing(_Strict):
    window: Window | None = None
    # percentile: the whole image's 1st..99th percentile to 0..1; central: those of the central field (where any
    # chest film shows lungs and mediastinum, whatever lies at its edges), clipped to -0.5..1.5; central-rank: each
    # value by its rank among the central field's (1st..99th percentile to 0..1) and beyond them among the whole
    # image's (to -0.5 and 1.5), so that a grey-level curve that keeps the order of values changes nothing
    normalize: Literal["none", "percentile", "central", "central-rank"] = "none"
    spacing_mm: tuple[float, ...] | None = None
    input_size: tuple[int, ...] | None = None
    longest_side: int | None = Field(default=None, ge=8)  # 2D: fit into a square of this side (aspect kept), pad
    patch_size: tuple[int, ...] | None = None  # infer over windows of this size on the model grid (sliding window)
    pad_multiple: tuple[int, ...] | None = None  # pad each axis up to a multiple (networks that pool)
    # what fills the padding: the image's minimum, or its edge pixels repeated (an anatomy cut by the film's
    # border then continues instead of meeting a band darker than air, which looks like a pneumothorax rim)
    pad: Literal["minimum", "edge"] = "minimum"

    @model_validator(mode="after")
    def _one_intensity_mapping(self) -> Preprocessing:
        if self.window is not None and self.normalize != "none":
            raise ValueError("give either window or normalize, not both")
        if sum(v is not None for v in (self.spacing_mm, self.input_size, self.longest_side)) > 1:
            raise ValueError("give one of spacing_mm, input_size and longest_side")
        return self

    @field_validator("spacing_mm")
    @classmethod
    def _positive_spacing(cls, spacing: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if spacing is not None and (len(spacing) not in (2, 3) or min(spacing) <= 0):
            raise ValueError("spacing_mm is 2 or 3 values, every one above 0 mm")
        return spacing

    @field_validator("input_size", "pad_multiple", "patch_size")
    @classmethod
    def _positive_size(cls, size: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if size is not None and (len(size) not in (2, 3) or min(size) < 1):
            raise ValueError("2 or 3 positive integers")
        return size


class Calibration(_Strict):
    """Platt scaling of the network's probability, sigmoid(slope * logit(p) + intercept), and for scores under
    `below` (fitted at the mask threshold: no region the network is sure of, or one its density and size weigh
    down) a factor `below_scale` <= 1 on top. One sigmoid fitted over all studies gave a CT head with no sure
    region 0.15-0.3, where 3 of 40 such validation heads bled; the factor is their observed rate over the
    sigmoid's. It keeps the order."""

    slope: float = Field(default=1.0, gt=0)  # above 0, so calibration never reorders findings
    intercept: float = 0.0
    below: float = Field(default=0.0, ge=0.0, le=1.0)
    below_scale: float = Field(default=1.0, gt=0.0, le=1.0)  # at most 1, so the order is kept

    def apply(self, p: float) -> float:
        scale = self.below_scale if p < self.below else 1.0
        if (self.slope, self.intercept) == (1.0, 0.0):
            return p * scale
        q = min(max(p, 1e-7), 1 - 1e-7)
        return scale / (1.0 + math.exp(-(self.slope * math.log(q / (1 - q)) + self.intercept)))


class Growth(_Strict):
    """Grow each region into the image (models/growth.py): its mask and volume then follow the lesion, not only
    the part the network saw. Needs the output's value_range and a 3D segmentation model."""

    margin_mm: float = Field(gt=0, le=200)  # how far beyond the network's region the mask may grow
    background: tuple[float, float]  # values of the tissue around a lesion (brain 15..45 HU): the edge is half way
    barrier: float  # values at or above it (bone): partial volume beside them mimics the lesion, not grown through
    barrier_mm: float = Field(default=2.0, ge=0)  # in-plane reach of that partial volume (and one slice in z)
    open_mm: float = Field(default=1.0, ge=0)  # bridges thinner than twice this are cut before growing
    # > 0: measured by partial volume (models/partial_volume.py) over voxels this far beyond the grown mask; 0: counted
    partial_volume_mm: float = Field(default=0.0, ge=0, le=20)

    @model_validator(mode="after")
    def _ordered(self) -> Growth:
        if not self.background[0] < self.background[1] < self.barrier:
            raise ValueError("growth needs background = [low, high] with low < high < barrier")
        return self


class Peak(_Strict):
    """A region whose densest part reads denser than the lesion can be is the blurred edge of something denser (a
    faintly calcified falx reads 95-130 HU after the scanner's blur, and the network takes it for blood): its
    probability is weighed by a logistic factor of that peak around `max_value`, `softness` wide (0: a hard cut).
    Values at or above `barrier` (bone), and their partial volume, are not counted (models/peak.py)."""

    max_value: float
    softness: float = Field(default=0.0, ge=0.0)
    barrier: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Peak:
        if self.barrier is not None and self.barrier <= self.max_value:
            raise ValueError("peak needs barrier above max_value")
        return self


class OutputClass(_Strict):
    label: str = Field(min_length=1, max_length=64)
    code: Code
    finding_site: Code | None = None  # where the finding is (anatomy), e.g. SCT 128319008 Intracranial structure
    threshold: float = Field(ge=0.0, le=1.0)
    urgency: float = Field(ge=0.0, le=1.0)
    mask_threshold: float = Field(default=0.5, gt=0.0, lt=1.0)  # per-voxel network probability that makes a region
    min_volume_ml: float = Field(default=0.0, ge=0.0)  # smaller regions are not reported (3D)
    min_area_mm2: float = Field(default=0.0, ge=0.0)  # smaller regions are not reported (2D)
    # A region's density (mean input value, e.g. HU, of its core) weighs its probability softly: a logistic
    # factor centred on min_mean_value, mean_value_softness wide (0: a hard cut, as before)
    min_mean_value: float | None = None
    mean_value_softness: float = Field(default=0.0, ge=0.0)
    # Refine each region's mask on the volume's own grid: keep the voxels whose (lightly smoothed) value lies in
    # this range, e.g. [40, 100] HU for fresh blood, so sizes follow the image rather than the network's blur
    value_range: tuple[float, float] | None = None
    growth: Growth | None = None  # grow regions into the image (needs value_range)
    peak: Peak | None = None  # weigh down regions whose peak is denser than the lesion (3D)
    calibration: Calibration = Field(default_factory=Calibration)


class Manifest(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    version: str = Field(min_length=1, max_length=64)
    family: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")
    task: Literal["segmentation", "detection", "classification"]
    dims: Literal[2, 3] = 3
    description: str = ""
    modalities: list[str] = Field(min_length=1)
    body_parts: list[str] = Field(default_factory=list)
    contrast: Literal["with", "without", "any"] = "any"  # a study whose header says otherwise is out of scope
    field_of_view_mm: tuple[float, float] | None = None  # in-plane extent (min, max) of the images it reads
    coverage_mm: tuple[float, float] | None = None  # 3D: extent (min, max) along the body's long axis it reads
    max_slice_mm: float | None = Field(default=None, gt=0)  # 3D: the widest slice spacing it reads
    views: list[str] = Field(default_factory=list)  # radiographs: the View Position values it reads (PA, AP)
    weights: str | None = Field(default=None, min_length=1)
    format: Literal["pt2", "torchscript", "python"] = "pt2"
    network: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")  # python format: "module:Class"
    network_args: dict[str, Any] = Field(default_factory=dict)
    preprocessing: Preprocessing = Field(default_factory=Preprocessing)
    outputs: list[OutputClass] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> Manifest:
        labels = [o.label for o in self.outputs]
        if len(set(labels)) != len(labels):
            raise ValueError("output labels must be unique")
        if self.format == "python" and self.network is None:
            raise ValueError("format python needs network = 'module:Class'")
        if self.format != "python" and (self.weights is None or self.network is not None):
            raise ValueError(f"format {self.format} needs weights and no network")
        for key in ("field_of_view_mm", "coverage_mm"):
            limits = getattr(self, key)
            if limits is not None and not 0 < limits[0] < limits[1]:
                raise ValueError(f"{key} needs 0 < min < max")
        if self.dims != 3 and (self.coverage_mm is not None or self.max_slice_mm is not None):
            raise ValueError("coverage_mm and max_slice_mm are for 3D models (dims = 3)")
        prep = self.preprocessing
        for key in ("spacing_mm", "input_size", "pad_multiple", "patch_size"):
            value = getattr(prep, key)
            if value is not None and len(value) != self.dims:
                raise ValueError(f"preprocessing.{key} needs {self.dims} values for a {self.dims}D model")
        for output in self.outputs:
            if output.growth is not None and (
                output.value_range is None or self.dims != 3 or self.task != "segmentation"
            ):
                raise ValueError(f"output {output.label!r}: growth needs value_range and a 3D segmentation model")
            if output.peak is not None and self.dims != 3:
                raise ValueError(f"output {output.label!r}: peak is for 3D models (dims = 3)")
        return self

    def output(self, label: str) -> OutputClass:
        return next(o for o in self.outputs if o.label == label)


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
    if manifest.weights is not None and not (path.parent / manifest.weights).is_file():
        raise ManifestError(f"{path}: weights: file not found: {path.parent / manifest.weights}")
    return manifest


def weights_uid(weights: Path) -> str:
    """A UID that changes whenever the weights change (2.25 + a name-based UUID of their SHA-256)."""
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    return f"2.25.{uuid.uuid5(_WEIGHTS_NAMESPACE, digest).int}"


def version_uid(name: str, version: str) -> str:
    """The UID of a model without weights: changes with its version."""
    return f"2.25.{uuid.uuid5(_WEIGHTS_NAMESPACE, name + chr(0) + version).int}"
