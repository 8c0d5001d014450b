"""A binary Segmentation per analysed series with masks: one segment per finding, linked to the SR by tracking UID."""

from __future__ import annotations

import zlib

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results.content import AnalysedSeries, coded
from dicomnode.results.identity import MANUFACTURER, SEG_SERIES_NUMBER, ResultIdentity, software_version
from models.findings import Finding


def algorithm(identity: ResultIdentity) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name=identity.model, family=codes.cid7162.ArtificialIntelligence, version=identity.model_version
    )


def segment_numbers(series: AnalysedSeries) -> dict[int, int]:
    """Finding index within the series -> its segment number in the series' SEG (findings with masks only)."""
    masked = [k for k, f in enumerate(series.findings) if f.mask is not None]
    return {k: number for number, k in enumerate(masked, start=1)}


def build_seg(series: AnalysedSeries, identity: ResultIdentity, first_index: int) -> Dataset | None:
    """The SEG of one series, or None when none of its findings has a mask. Finding k of the series has tracking
    index first_index + k, as in the SR, and segment number segment_numbers(series)[k]."""
    numbers = segment_numbers(series)
    if not numbers:
        return None
    rows, columns = int(series.sources[0].Rows), int(series.sources[0].Columns)
    # Only the slices the findings cover, as a label map: highdicom checks and packs every voxel it is given,
    # and a one-hot array of a 300-slice CT costs seconds. Omitted slices would be empty frames anyway.
    z_lo = min(series.findings[k].bbox[0] for k in numbers)
    z_hi = max(series.findings[k].bbox[3] for k in numbers)
    labels = np.zeros((z_hi - z_lo, rows, columns), dtype=np.uint8)
    overlap = False
    descriptions = []
    for k, number in numbers.items():
        f = series.findings[k]
        z0, y0, x0, z1, y1, x1 = f.bbox
        box = labels[z0 - z_lo : z1 - z_lo, y0:y1, x0:x1]
        overlap |= bool((box[f.mask] != 0).any())
        box[f.mask] = number
        descriptions.append(_description(identity, f, number, first_index + k))
    pixels = _one_hot(series, numbers, z_lo, z_hi, labels.shape) if overlap else labels
    seg = hd.seg.Segmentation(
        source_images=series.sources[z_lo:z_hi],  # in mask order: highdicom does not sort them
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=identity.seg_series_uid,
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=identity.seg_uid(series.series_uid),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=identity.model,
        software_versions=(software_version(), identity.model_version),
        device_serial_number=identity.model_uid[-16:],
        content_description=f"{identity.description} segmentation"[:64],
        content_label="AI_SEGMENTATION",
        content_creator_name=f"{MANUFACTURER}^{identity.model}"[:64],
        contributing_equipment=[contributing_equipment(identity)],
        omit_empty_frames=True,
    )
    seg.SeriesDescription = f"{identity.description} segmentation"[:64]
    seg.DeviceUID = identity.model_uid
    return seg


def _description(identity: ResultIdentity, f: Finding, number: int, index: int) -> hd.seg.SegmentDescription:
    return hd.seg.SegmentDescription(
        segment_number=number,
        segment_label=identity.tracking_id(index, f.label),
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=coded(f.code),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm(identity),
        tracking_uid=identity.tracking_uid(index),
        tracking_id=identity.region_tracking_id(index, f.label),
        anatomic_regions=[coded(f.site)] if f.site else None,
        display_color=display_color(f),
    )


# Distinct, readable over grey anatomy; a finding type keeps its colour in every SEG (chosen by its code).
_PALETTE = ((255, 214, 0), (0, 200, 255), (255, 110, 200), (120, 230, 80), (255, 150, 40), (170, 130, 255))


def display_color(f: Finding) -> hd.color.CIELabColor:
    """The segment's Recommended Display CIELab Value: stable per finding type."""
    key = f"{f.code.scheme}:{f.code.value}".encode()
    return hd.color.CIELabColor.from_rgb(*_PALETTE[zlib.crc32(key) % len(_PALETTE)])


def _one_hot(
    series: AnalysedSeries, numbers: dict[int, int], z_lo: int, z_hi: int, shape: tuple[int, ...]
) -> np.ndarray:
    """Overlapping segments (findings of different outputs) need one channel each."""
    pixels = np.zeros((*shape, len(numbers)), dtype=bool)
    for k, number in numbers.items():
        f = series.findings[k]
        z0, y0, x0, z1, y1, x1 = f.bbox
        pixels[z0 - z_lo : z1 - z_lo, y0:y1, x0:x1, number - 1] = f.mask
    return pixels


def contributing_equipment(identity: ResultIdentity) -> hd.ContributingEquipment:
    """IHE AI Results: the algorithm as contributing equipment (manufacturer, model, versions)."""
    return hd.ContributingEquipment(
        manufacturer=MANUFACTURER,
        purpose_of_reference=codes.DCM.ProcessingEquipment,
        manufacturer_model_name=identity.model,
        software_versions=(software_version(), identity.model_version),
        device_serial_number=identity.model_uid[-16:],
        contribution_description=f"AI analysis by {identity.model} {identity.model_version}"[:64],
    )
