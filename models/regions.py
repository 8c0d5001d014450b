"""Connected regions of a thresholded probability map."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy import ndimage


def connected_regions(mask: np.ndarray) -> Iterator[tuple[tuple[slice, ...], np.ndarray]]:
    """Each connected region of `mask`: its bounding slices and its own voxels within them."""
    labels, _ = ndimage.label(mask)
    for index, region in enumerate(ndimage.find_objects(labels), start=1):
        if region is not None:
            yield region, labels[region] == index
