"""The TID 1500 Imaging Measurement Report of one result, as IHE AI Results and OHIF expect it.

One measurement group per finding: Tracking Identifier (112039) and Tracking
Unique Identifier (112040), finding type, algorithm identification (TID 4019),
probability and measurements with UCUM units, and the location: the SEG
segment when the model segments, else a rectangle (SCOORD) on the finding's
centre slice. Each NUM is also INFERRED FROM that rectangle, where OHIF's SR
viewport (for a segment) and Cornerstone's hydration (always: it reads the
region of the group's first NUM) look for it. A finding type the model looked
for and did not find is stated as Absent, so PACS shows the study was analysed,
and by which model version.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import SegmentationStorage

from dicomnode.results.content import (
    MEASUREMENT_NAMES,
    NO_SPACING,
    PROBABILITY,
    AnalysedSeries,
    coded,
    key_slices,
    unit,
)
from dicomnode.results.identity import MANUFACTURER, SR_SERIES_NUMBER, ResultIdentity
from dicomnode.results.seg import contributing_equipment, segment_numbers
from models.findings import Finding
from models.manifest import Code

QUALITATIVE_EVALUATIONS = hd.sr.CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
VOXEL_SUM = hd.sr.CodedConcept("126030", "DCM", "Sum of segmented voxel method for volume")  # CID 7474
ANY_FINDING = Code(scheme="SCT", value="404684003", meaning="Finding")  # what a model without a manifest looked for


def build_sr(
    series: list[AnalysedSeries], identity: ResultIdentity, looked_for: list[Code], segs: list[Dataset]
) -> Dataset:
    """`looked_for`: every finding type the model reports (its manifest's output codes); `segs`: the SEGs of
    these series (build_seg), evidence for the segments the groups reference."""
    algorithm = hd.sr.AlgorithmIdentification(name=identity.model, version=identity.model_version)
    groups: list = []
    index = 0
    for s in series:
        numbers = segment_numbers(s)
        for k, f in enumerate(s.findings):
            groups.append(_finding_group(s, f, numbers.get(k), index, identity, algorithm))
            index += 1
    found = {(f.code.scheme, f.code.value) for s in series for f in s.findings}
    for code in looked_for or ([] if groups else [ANY_FINDING]):
        if (code.scheme, code.value) not in found:
            groups.append(_absent_group(code, index, identity, algorithm))
            index += 1
    report = hd.sr.MeasurementReport(
        observation_context=_observer(identity),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=groups,
        referenced_images=_library(series),
    )
    sr = _document(report, [ds for s in series for ds in s.sources] + segs, identity)
    sr.SeriesDescription = f"{identity.description} findings"[:64]
    return sr


def _document(report: hd.sr.MeasurementReport, evidence: list[Dataset], identity: ResultIdentity) -> Dataset:
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=identity.sr_series_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=identity.sr_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        contributing_equipment=[contributing_equipment(identity)],
    )
    sr.DeviceUID = identity.model_uid
    return sr


def build_out_of_scope_sr(sources: list[Dataset], identity: ResultIdentity, reason: str) -> Dataset:
    """The SR of a study the model was not run on: one group with no finding type, no value and no Absent (that
    would read as negative), only the statement that it was not analysed and why."""
    algorithm = hd.sr.AlgorithmIdentification(name=identity.model, version=identity.model_version)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(identity, 0, identity.tracking_id(0, "not analysed")), algorithm_id=algorithm
    )
    group[0].ContentSequence.append(_statement(out_of_scope_statement(identity, reason)))
    report = hd.sr.MeasurementReport(
        observation_context=_observer(identity),
        procedure_reported=codes.SCT.ImagingProcedure,
        imaging_measurements=[group],
    )
    sr = _document(report, sources, identity)
    sr.SeriesDescription = f"{identity.description} not analysed"[:64]
    return sr


def out_of_scope_statement(identity: ResultIdentity, reason: str) -> str:
    return f"Not analysed by {identity.model} {identity.model_version}: out of scope ({reason})"[:1024]


def _library(series: list[AnalysedSeries]) -> list[Dataset] | None:
    """The Image Library (TID 1600): the images the findings are on, each finding's centre slice. Not every
    source image: highdicom describes and copies each entry, which took 20 s for a 300-slice CT. Only images
    highdicom can describe (a radiograph without pixel spacing cannot be) are listed; all stay in the evidence."""
    described = []
    for ds in key_slices(series):
        try:
            hd.sr.ImageLibraryEntryDescriptors(ds)
        except (AttributeError, ValueError, TypeError):
            continue
        described.append(ds)
    return described or None


def _observer(identity: ResultIdentity) -> hd.sr.ObservationContext:
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=identity.model_uid, name=identity.model, manufacturer_name=MANUFACTURER, model_name=identity.model
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.DCM.Device, observer_identifying_attributes=device
        )
    )


def _tracking(identity: ResultIdentity, index: int, identifier: str) -> hd.sr.TrackingIdentifier:
    return hd.sr.TrackingIdentifier(uid=identity.tracking_uid(index), identifier=identifier)


def _measurements(f: Finding) -> list[hd.sr.Measurement]:
    """The finding's NUMs, with no children but a region (below): OHIF drops a group's values when a NUM has
    children other than a SCOORD, so the algorithm is named once, by the group."""
    values = [hd.sr.Measurement(name=PROBABILITY, value=f.probability, unit=unit("1"))]
    for m in f.measurements:
        values.append(hd.sr.Measurement(name=MEASUREMENT_NAMES[m.name], value=m.value, unit=unit(m.unit)))
    return values


def _finding_group(
    s: AnalysedSeries,
    f: Finding,
    segment_number: int | None,
    index: int,
    identity: ResultIdentity,
    algorithm: hd.sr.AlgorithmIdentification,
):  # noqa: ANN202
    common = {
        "tracking_identifier": _tracking(identity, index, identity.region_tracking_id(index, f.label)),
        "finding_type": coded(f.code),
        "algorithm_id": algorithm,
        "measurements": _measurements(f),
        "finding_sites": [hd.sr.FindingSite(coded(f.site))] if f.site else None,
    }
    if segment_number is not None:
        segment = hd.sr.ReferencedSegment(
            sop_class_uid=SegmentationStorage,
            sop_instance_uid=identity.seg_uid(s.series_uid),
            segment_number=segment_number,
            source_series=hd.sr.SourceSeriesForSegmentation(s.series_uid),
        )
        group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            referenced_segment=segment, method=_volume_method(f), **common
        )
    else:
        group = hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(referenced_region=_rectangle(s, f), **common)
    _place_on_centre_slice(group, s, f)
    if not s.spacing_known:
        group[0].ContentSequence.append(_statement(NO_SPACING))
    return group


def _volume_method(f: Finding) -> hd.sr.CodedConcept | None:
    """How the volume was measured, where the group's measurements are read: it is the segment's voxel count times
    the voxel volume. A NUM's own method would be a child other than its region, which OHIF does not keep."""
    if not any(m.name == "volume" for m in f.measurements):
        return None
    return VOXEL_SUM


def _place_on_centre_slice(group: hd.sr.MeasurementsAndQualitativeEvaluations, s: AnalysedSeries, f: Finding) -> None:
    """Each NUM INFERRED FROM the box on the centre slice: OHIF skips a group with no SCOORD (a segment's), and
    Cornerstone's hydration takes the region under the group's first NUM only ("No spatial coordinates group found"
    for the region TID 1410 puts beside the NUMs). The group's own ROI stays what TID 1410/1411 want."""
    for item in group[0].ContentSequence:
        if item.ValueType == "NUM":
            item.ContentSequence = [*getattr(item, "ContentSequence", []), _inferred_region(s, f)]


def _inferred_region(s: AnalysedSeries, f: Finding) -> hd.sr.ScoordContentItem:
    source = s.sources[f.centre_slice]
    region = hd.sr.ScoordContentItem(
        name=codes.DCM.ImageRegion,
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_box(f),
        relationship_type=hd.sr.RelationshipTypeValues.INFERRED_FROM,
    )
    region.ContentSequence = [hd.sr.SourceImageForRegion(source.SOPClassUID, source.SOPInstanceUID)]
    return region


def _rectangle(s: AnalysedSeries, f: Finding) -> hd.sr.ImageRegion:
    """The bounding box on the finding's centre slice, referencing that image."""
    source = s.sources[f.centre_slice]
    return hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE,
        graphic_data=_box(f),
        source_image=hd.sr.SourceImageForRegion(source.SOPClassUID, source.SOPInstanceUID),
    )


def absent_statement(code: Code, identity: ResultIdentity) -> str:
    """In words, for viewers that show no coded evaluation: what was looked for, by whom, and not found."""
    meaning = code.meaning[:1].lower() + code.meaning[1:]
    return f"No {meaning} found by {identity.model} {identity.model_version}"[:1024]


def _box(f: Finding) -> np.ndarray:
    """The finding's bounding box as a closed polyline in image pixel coordinates (column, row)."""
    _, y0, x0, _, y1, x1 = f.bbox
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def _absent_group(
    code: Code, index: int, identity: ResultIdentity, algorithm: hd.sr.AlgorithmIdentification
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(identity, index, identity.tracking_id(index, code.meaning)),
        finding_type=coded(code),
        algorithm_id=algorithm,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=coded(code), value=codes.SCT.Absent)],
    )
    # TID 1501 also allows its qualitative evaluations as TEXT: the same statement, readable by any viewer.
    group[0].ContentSequence.append(_statement(absent_statement(code, identity)))
    return group


def _statement(text: str) -> hd.sr.TextContentItem:
    return hd.sr.TextContentItem(
        name=QUALITATIVE_EVALUATIONS, value=text, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
