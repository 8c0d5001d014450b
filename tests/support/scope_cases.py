"""Series a hospital would route to the wrong model by mistake, for the scope gate's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dicomnode.analysis.volume import load_series_with_sources
from dicomnode.demo.synthetic import SeriesSpec, write_volume_series


def chest_ct(tmp: Path, fov_mm: float, body_part: str) -> tuple:
    """A CT chest: soft tissue to an elliptical body outline, two air-filled lungs, a spine."""
    n, size = 24, 128
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    body = (xx / 0.45) ** 2 + (yy / 0.35) ** 2 < 1
    lungs = ((np.abs(xx) - 0.2) / 0.15) ** 2 + (yy / 0.22) ** 2 < 1
    spine = (xx / 0.05) ** 2 + ((yy - 0.25) / 0.05) ** 2 < 1
    slice_hu = np.where(body, 40.0, -1000.0)
    slice_hu[lungs & body] = -850.0
    slice_hu[spine] = 700.0
    hu = np.repeat(slice_hu[None], n, axis=0) + np.random.default_rng(3).normal(0, 10, (n, size, size))
    series = SeriesSpec(
        n_slices=n,
        rows=size,
        columns=size,
        slice_thickness_mm=5.0,
        pixel_spacing_mm=fov_mm / size,
        body_part=body_part,
        description="",
    )
    return load_series_with_sources(write_volume_series(series, hu, tmp), series.series_uid)
