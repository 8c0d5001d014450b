"""AI results as DICOM: SR and SEG built from real model findings pass dciodvfy and dsrdump, read back with
highdicom, follow OHIF's loading rules, and keep their UIDs across re-runs."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from dicomnode.analysis.volume import load_series
from dicomnode.config.export import ResultKind
from dicomnode.demo.synthetic import SeriesSpec, radiograph, write_volume_series
from dicomnode.results.content import AnalysedSeries, repair_temporal_values
from dicomnode.results.encode import encode_result
from dicomnode.results.identity import ResultIdentity, result_uid
from dicomnode.results.seg import build_seg, display_color
from dicomnode.results.sr import build_sr
from models.phantoms.chest_xr import chest_radiograph
from models.phantoms.ct_head import ct_head
from models.registry import ModelSpec, builtin_spec
from tests.support.helpers import require_tool
from tests.support.validate import validate


def identity(study_uid: str, spec: ModelSpec) -> ResultIdentity:
    return ResultIdentity(result_uid(study_uid, spec.name, spec.version), spec.name, spec.version, spec.uid)


def analysed(paths: list[Path], series_uid: str, spec: ModelSpec) -> AnalysedSeries:
    volume = load_series(paths, series_uid)
    headers = {ds.SOPInstanceUID: ds for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in paths)}
    return AnalysedSeries(series_uid, [headers[u] for u in volume.slice_uids], spec.load("cpu").predict(volume))


@pytest.fixture(scope="module")
def ct_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[SeriesSpec, AnalysedSeries, ModelSpec]:
    folder = tmp_path_factory.mktemp("ct")
    p = ct_head(np.random.default_rng(9501), bleeds=2)
    series = SeriesSpec(n_slices=32, rows=128, columns=128, slice_thickness_mm=5.0, pixel_spacing_mm=1.5)
    paths = write_volume_series(series, p.hu, folder)
    spec = builtin_spec("ct-hemorrhage")
    return series, analysed(list(reversed(paths)), series.series_uid, spec), spec  # any file order


def test_ct_findings_become_a_valid_sr_and_seg_linked_by_tracking_uid(ct_case, tmp_path: Path) -> None:  # noqa: ANN001
    series, case, spec = ct_case
    assert len(case.findings) >= 2
    ident = identity(series.study_uid, spec)
    seg = build_seg(case, ident, 0)
    sr = build_sr([case], ident, [o.code for o in spec.manifest.outputs], [seg])
    for name, ds in (("seg.dcm", seg), ("sr.dcm", sr)):
        ds.save_as(tmp_path / name, enforce_file_format=True)
        validate(tmp_path / name)
    dump = subprocess.run(
        [require_tool("dsrdump"), str(tmp_path / "sr.dcm")], capture_output=True, text=True, check=False
    )
    assert dump.returncode == 0 and "Imaging Measurement Report" in dump.stdout and "Tracking Unique" in dump.stdout
    assert '"Finding Site")=(128319008,SCT,"Intracranial structure")' in dump.stdout
    # the Image Library (TID 1600) lists the slices the findings are on
    [library] = [item for item in sr.ContentSequence if item.ConceptNameCodeSequence[0].CodeValue == "111028"]
    listed = {
        entry.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for group in library.ContentSequence
        for entry in group.ContentSequence
        if entry.ValueType == "IMAGE"
    }
    assert listed == {case.sources[f.centre_slice].SOPInstanceUID for f in case.findings}

    # OHIF: root TID 1500, 112039 and 112040 in every group; SEG with ReferencedSeriesSequence
    back = hd.sr.srread(tmp_path / "sr.dcm")
    assert back.ConceptNameCodeSequence[0].CodeValue == "126000"
    assert back.StudyInstanceUID == series.study_uid and back.SeriesDescription.startswith("AI ct-hemorrhage")
    groups = back.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(case.findings)
    seg_back = hd.seg.segread(tmp_path / "seg.dcm")
    assert seg_back.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
    equipment = [(e.Manufacturer, e.get("ManufacturerModelName")) for e in seg_back.ContributingEquipmentSequence]
    assert seg_back.DeviceUID == spec.uid and ("dicomnode", "ct-hemorrhage") in equipment
    for number, (group, finding) in enumerate(zip(groups, case.findings, strict=True), start=1):
        assert group.tracking_uid == seg_back.get_segment_description(number).tracking_uid
        assert group.finding_type.value == finding.code.value == "1386000"
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        assert values["Probability"] == (pytest.approx(finding.probability), "1")
        assert values["Volume"] == (pytest.approx(finding.measurement("volume")), "ml")
        segment = group.referenced_segment
        assert (
            segment.referenced_segment_numbers == [number] and segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        )

    # What dcmqi and OHIF read without a warning: a content creator, a colour per segment (the same for a finding
    # type in every SEG); NUMs with no children but a SCOORD, so OHIF keeps their values
    assert seg_back.ContentCreatorName == "dicomnode^ct-hemorrhage"
    colours = {tuple(d.RecommendedDisplayCIELabValue) for d in seg_back.SegmentSequence}
    assert colours == {tuple(display_color(case.findings[0]).value)}, "one finding type, one colour"
    nums = [item for item in _walk(back.ContentSequence) if item.ValueType == "NUM"]
    assert nums and all(c.ValueType in ("SCOORD", "SCOORD3D") for n in nums for c in n.get("ContentSequence", []))

    # The SEG's masks are the findings' masks, slice by slice (source images passed in mask order)
    mask = seg_back.get_volume().array  # (frames with content, rows, columns, segments)
    assert mask.sum() == sum(int(f.mask.sum()) for f in case.findings)


def _walk(items) -> list:  # noqa: ANN001
    found = []
    for item in items:
        found.append(item)
        found.extend(_walk(item.get("ContentSequence", [])))
    return found


def test_the_same_result_gets_the_same_uids_and_a_new_model_version_new_ones(ct_case) -> None:  # noqa: ANN001
    series, case, spec = ct_case
    first, second = identity(series.study_uid, spec), identity(series.study_uid, spec)
    a = build_sr([case], first, [], [build_seg(case, first, 0)])
    b = build_sr([case], second, [], [build_seg(case, second, 0)])
    assert (a.SOPInstanceUID, a.SeriesInstanceUID) == (b.SOPInstanceUID, b.SeriesInstanceUID)
    other = ResultIdentity(result_uid(series.study_uid, spec.name, "9.9.9"), spec.name, "9.9.9", spec.uid)
    assert other.sr_uid != first.sr_uid and other.seg_uid(series.series_uid) != first.seg_uid(series.series_uid)


@pytest.mark.parametrize("implicit", [False, True])
def test_dates_a_scanner_wrote_invalidly_are_blanked_and_the_result_still_encodes(
    ct_case,  # noqa: ANN001
    tmp_path: Path,
    implicit: bool,
) -> None:
    """In files as they arrive: an implicit VR file's elements carry no VR until pydicom converts them."""
    series, case, spec = ct_case
    written = []
    for number, source in enumerate(case.sources[:3]):
        ds = copy.deepcopy(source)  # the fixture's headers stay as they were
        ds.StudyDate, ds.StudyTime = "2026-13-45", "25:61"  # not DA, not TM
        ds.PatientBirthDate = "19700101"  # valid: kept
        ds.add_new(0x00091010, "LO", "not a date")  # a private element: never read as one
        if implicit:
            ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
        ds.save_as(tmp_path / f"{number}.dcm", enforce_file_format=True)
        written.append(pydicom.dcmread(tmp_path / f"{number}.dcm", stop_before_pixels=True))
    assert written[0].is_implicit_VR == implicit
    assert repair_temporal_values(copy.deepcopy(written)) == 6
    broken = AnalysedSeries(case.series_uid, written + case.sources[3:], case.findings)
    results = encode_result([broken], identity(series.study_uid, spec), [], {ResultKind.SR, ResultKind.SEG})
    assert (written[0].StudyDate, written[0].StudyTime, written[0].PatientBirthDate) == ("", "", "19700101")
    for number, ds in enumerate(results):
        ds.save_as(tmp_path / f"result-{number}.dcm", enforce_file_format=True)
        validate(tmp_path / f"result-{number}.dcm", warnings=True)  # warned: Study Date empty (Type 2)


def test_a_study_without_findings_gets_an_sr_saying_so(ct_case, tmp_path: Path) -> None:  # noqa: ANN001
    series, case, spec = ct_case
    empty = AnalysedSeries(case.series_uid, case.sources, [])
    assert build_seg(empty, identity(series.study_uid, spec), 0) is None
    sr = build_sr([empty], identity(series.study_uid, spec), [o.code for o in spec.manifest.outputs], [])
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    validate(tmp_path / "sr.dcm")
    [group] = hd.sr.srread(tmp_path / "sr.dcm").content.get_image_measurement_groups()
    [evaluation] = group.get_qualitative_evaluations()
    assert (evaluation.name.value, evaluation.value.meaning) == ("1386000", "Absent")
    dump = subprocess.run(
        [require_tool("dsrdump"), "+Pl", "+Pc", str(tmp_path / "sr.dcm")], capture_output=True, text=True, check=False
    ).stdout
    assert group.tracking_uid and 'Algorithm Version")="' + spec.version in dump
    assert group.tracking_identifier == group.tracking_identifier.lower(), "spelt as a found finding's would be"
    # the same statement in words, for viewers that show no coded evaluation
    assert f'(C0034375,UMLS,"Qualitative Evaluations")="No intracranial hemorrhage found by {spec.name}' in dump
    assert "Image Library" not in dump  # no finding, no image to list


def test_a_radiograph_finding_is_a_rectangle_on_the_image(tmp_path: Path) -> None:
    p = chest_radiograph(np.random.default_rng(9701), pneumothorax=True)
    series = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=1.4)
    path = tmp_path / "xr.dcm"
    radiograph(series, p.image).save_as(path, enforce_file_format=True)
    spec = builtin_spec("cxr-pneumothorax")
    case = analysed([path], series.series_uid, spec)
    [finding] = case.findings
    sr = build_sr([case], identity(series.study_uid, spec), [o.code for o in spec.manifest.outputs], [])
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    validate(tmp_path / "sr.dcm")
    [group] = hd.sr.srread(tmp_path / "sr.dcm").content.get_planar_roi_measurement_groups()
    region = group.roi
    assert region.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
    referenced = region.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID
    assert referenced == case.sources[0].SOPInstanceUID, "SCOORD references an instance of the study"
    z0, y0, x0, z1, y1, x1 = finding.bbox
    assert list(region.GraphicData[:4]) == [x0, y0, x1, y0]
    assert group.finding_type.value == "36118008"
    assert group.method is None, "no segment: its area is not a voxel sum, and no method claims it is"


def test_library_messages_pass_unless_they_quote_a_header_value() -> None:
    from dicomnode.results.encode import quotes_no_values

    ds = pydicom.Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "MRN-48213"
    ds.PatientBirthDate = "19610704"
    ds.StudyDescription = "HEAD ROUTINE"
    assert quotes_no_values("Frame of Reference UID differs between source images", [ds])
    for leaky in (
        "invalid value 'Doe^Jane' for PN",
        "Jane is not a valid code",
        "patient MRN-48213 unknown",
        "bad date 19610704",
        "routine is not allowed here",
    ):
        assert not quotes_no_values(leaky, [ds]), leaky


def test_each_finding_gets_a_secondary_capture_key_image(ct_case, tmp_path: Path) -> None:  # noqa: ANN001
    from dicomnode.results.keyimage import NOT_FOR_DIAGNOSIS
    from dicomnode.results.sc import SIDE, build_key_images

    series, case, spec = ct_case
    ident = identity(series.study_uid, spec)
    images = build_key_images([case], ident)
    assert [ds.SOPInstanceUID for ds in images] == [ident.key_image_uid(i) for i in range(len(case.findings))]
    assert [ds.SOPInstanceUID for ds in build_key_images([case], ident)] == [ds.SOPInstanceUID for ds in images]
    for k, (sc, finding) in enumerate(zip(images, case.findings, strict=True)):
        path = tmp_path / f"sc{k}.dcm"
        sc.save_as(path, enforce_file_format=True)
        validate(path)
        back = pydicom.dcmread(path)
        assert back.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7" and back.Modality == "OT"
        assert (back.StudyInstanceUID, back.PatientID) == (series.study_uid, case.sources[0].PatientID)
        assert back.SeriesInstanceUID == ident.key_image_series_uid and back.SeriesInstanceUID != series.series_uid
        assert back.BurnedInAnnotation == "YES" and back.ImageComments == NOT_FOR_DIAGNOSIS
        source = case.sources[finding.centre_slice]
        assert back.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        rgb = back.pixel_array
        assert back.PhotometricInterpretation == "RGB" and rgb.shape[1] == SIDE  # a square slice: 1024 wide
        yellow = (rgb[..., 0] > 200) & (rgb[..., 1] > 180) & (rgb[..., 2] < 60)
        rows, cols = np.nonzero(yellow)
        scale = SIDE / 128
        _, y0, x0, _, y1, x1 = finding.bbox
        assert rows.min() < y0 * scale <= y1 * scale < rows.max(), "the box surrounds the finding"
        assert cols.min() < x0 * scale <= x1 * scale < cols.max()
        band = rgb[SIDE:]  # the caption below the image: white text on black
        assert (band > 200).all(axis=-1).sum() > 500, "no caption burned in"


def test_a_radiograph_without_pixel_spacing_gets_no_sizes_and_the_sr_says_why(tmp_path: Path) -> None:
    from dicomnode.analysis.volume import load_series_with_sources
    from dicomnode.results.content import NO_SPACING, analysed_series

    p = chest_radiograph(np.random.default_rng(9701), pneumothorax=True)
    series = SeriesSpec(modality="DX", body_part="CHEST", pixel_spacing_mm=1.4)
    ds = radiograph(series, p.image)
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword in ds:
            del ds[keyword]
    path = tmp_path / "xr.dcm"
    ds.save_as(path, enforce_file_format=True)
    spec = builtin_spec("cxr-pneumothorax")
    volume, sources = load_series_with_sources([path], series.series_uid)
    assert not volume.spacing_known
    [finding] = spec.load("cpu").predict(volume)
    assert finding.measurements, "the model measured, as if pixels were 1 mm"
    case = analysed_series(series.series_uid, sources, [finding], volume.spacing_known)
    assert case.findings[0].measurements == ()
    sr = build_sr([case], identity(series.study_uid, spec), [o.code for o in spec.manifest.outputs], [])
    sr.save_as(tmp_path / "sr.dcm", enforce_file_format=True)
    validate(tmp_path / "sr.dcm")
    dump = subprocess.run(
        [require_tool("dsrdump"), "+Pl", str(tmp_path / "sr.dcm")], capture_output=True, text=True, check=False
    ).stdout
    assert NO_SPACING in dump and "mm2" not in dump and "Area" not in dump


def test_a_presentation_state_draws_each_finding_and_a_kos_flags_the_key_slices(ct_case, tmp_path: Path) -> None:  # noqa: ANN001
    from dicomnode.results.ko import build_key_object_selection
    from dicomnode.results.pr import build_presentation_states

    series, case, spec = ct_case
    ident = identity(series.study_uid, spec)
    [gsps] = build_presentation_states([case], ident)
    [kos] = build_key_object_selection([case], ident)
    for name, ds in (("gsps.dcm", gsps), ("kos.dcm", kos)):
        ds.save_as(tmp_path / name, enforce_file_format=True)
        validate(tmp_path / name)
    gsps = pydicom.dcmread(tmp_path / "gsps.dcm")
    assert gsps.SOPClassUID == "1.2.840.10008.5.1.4.1.1.11.1" and gsps.StudyInstanceUID == series.study_uid
    annotations = gsps.GraphicAnnotationSequence
    assert len(annotations) == len(case.findings)
    for annotation, finding in zip(annotations, case.findings, strict=True):
        source = case.sources[finding.centre_slice]
        assert annotation.ReferencedImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
        _, y0, x0, _, y1, x1 = finding.bbox
        box = [float(v) for v in annotation.GraphicObjectSequence[0].GraphicData]
        assert box[:4] == [x0, y0, x1, y0] and annotation.GraphicObjectSequence[0].GraphicAnnotationUnits == "PIXEL"
        text = annotation.TextObjectSequence[0].UnformattedTextValue
        assert finding.label in text and "not for diagnostic use" in text
    kos = pydicom.dcmread(tmp_path / "kos.dcm")
    flagged = {
        item.ReferencedSOPSequence[0].ReferencedSOPInstanceUID
        for item in kos.ContentSequence
        if item.ValueType == "IMAGE"
    }
    assert flagged == {case.sources[f.centre_slice].SOPInstanceUID for f in case.findings}
    assert build_key_object_selection([AnalysedSeries(case.series_uid, case.sources, [])], ident) == []
