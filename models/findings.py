"""What a model reports. Torch-free and DICOM-free, so the node may import it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Finding:
    """One detected abnormality in one image volume.

    `bbox` is in voxel indices of the analysed volume, (z0, y0, x0, z1, y1, x1)
    with the upper bounds exclusive; z indexes `ImageVolume.slice_uids`.
    """

    label: str
    score: float  # 0..1, the model's confidence
    bbox: tuple[int, int, int, int, int, int]
    volume_ml: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be within 0..1, got {self.score}")
        z0, y0, x0, z1, y1, x1 = self.bbox
        if not (0 <= z0 < z1 and 0 <= y0 < y1 and 0 <= x0 < x1):
            raise ValueError(f"bbox must be (z0, y0, x0, z1, y1, x1) with lower < upper bounds, got {self.bbox}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
