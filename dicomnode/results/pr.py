"""Grayscale Softcopy Presentation States: the findings drawn on the original slices by any viewer that applies
one. On request (export.kinds "gsps")."""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset

from dicomnode.results.content import AnalysedSeries, copy_body_part, key_slices
from dicomnode.results.identity import (
    MANUFACTURER,
    PRESENTATION_SERIES_NUMBER,
    ResultIdentity,
    software_version,
)
from dicomnode.results.keyimage import NOT_FOR_DIAGNOSIS, header_window
from dicomnode.results.seg import contributing_equipment
from models.findings import Finding

_YELLOW = hd.color.CIELabColor.from_rgb(255, 214, 0)  # the key image's box colour


def build_presentation_states(series: list[AnalysedSeries], identity: ResultIdentity) -> list[Dataset]:
    """One GSPS per series with findings: a box and a caption on each finding's centre slice."""
    states, index = [], 0
    for s in series:
        if not s.findings:
            continue
        layer = hd.pr.GraphicLayer(
            layer_name="AI FINDINGS", order=1, description=identity.description, display_color=_YELLOW
        )
        annotations = []
        for f in s.findings:
            annotations.append(_annotation(s.sources[f.centre_slice], f, index, identity, layer))
            index += 1
        referenced = key_slices([s])
        state = hd.pr.GrayscaleSoftcopyPresentationState(
            referenced_images=referenced,
            series_instance_uid=identity.presentation_series_uid,
            series_number=PRESENTATION_SERIES_NUMBER,
            sop_instance_uid=identity.presentation_uid(s.series_uid),
            instance_number=len(states) + 1,
            manufacturer=MANUFACTURER,
            manufacturer_model_name=identity.model,
            software_versions=(software_version(), identity.model_version),
            device_serial_number=identity.model_uid[-16:],
            content_label="AI_FINDINGS",
            content_description=f"{identity.description}: {NOT_FOR_DIAGNOSIS}"[:64],
            graphic_annotations=annotations,
            graphic_layers=[layer],
            voi_lut_transformations=_windows(referenced),
            contributing_equipment=[contributing_equipment(identity)],
        )
        copy_body_part(referenced[0], state)
        states.append(state)
    return states


def _annotation(
    source: Dataset, f: Finding, index: int, identity: ResultIdentity, layer: hd.pr.GraphicLayer
) -> hd.pr.GraphicAnnotation:
    _, y0, x0, _, y1, x1 = f.bbox
    box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)
    text = f"{f.label} {f.probability:.0%} ({identity.model} {identity.model_version}) - AI, not for diagnostic use"
    top = max(float(y0) - 2.0, 1.0)
    return hd.pr.GraphicAnnotation(
        referenced_images=[source],
        graphic_layer=layer,
        graphic_objects=[
            hd.pr.GraphicObject(
                graphic_type=hd.pr.GraphicTypeValues.POLYLINE,
                graphic_data=box,
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                tracking_id=identity.region_tracking_id(index, f.label),
                tracking_uid=identity.tracking_uid(index),
            )
        ],
        text_objects=[
            hd.pr.TextObject(
                text_value=text[:1024],
                units=hd.pr.AnnotationUnitsValues.PIXEL,
                anchor_point=(float(x0), top),
                anchor_point_visible=False,
            )
        ],
    )


def _windows(images: list[Dataset]) -> list[hd.pr.SoftcopyVOILUTTransformation] | None:
    """The slices' own window, when their headers have one (the viewer keeps its default otherwise)."""
    window = header_window(images[0])
    if window is None:
        return None
    low, high = window
    return [hd.pr.SoftcopyVOILUTTransformation(window_center=(low + high) / 2, window_width=high - low)]
