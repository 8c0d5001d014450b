"""What the encoders are given: each analysed series with its source headers (in volume order) and findings,
and the codes the standard's templates need, written once."""

from __future__ import annotations

from dataclasses import dataclass, replace

import highdicom as hd
from pydicom import Dataset
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.sr.codedict import codes
from pydicom.valuerep import DA, DT, TM

from models.findings import UNITS, Finding
from models.manifest import Code

UCUM = {**UNITS, "1": "no units"}  # the units findings are measured in, and the probability's
MEASUREMENT_NAMES = {
    "volume": codes.SCT.Volume,
    "longest diameter": codes.SCT.LongAxis,
    "area": codes.SCT.Area,
}
PROBABILITY = codes.DCM.Probability  # (122157, DCM)


@dataclass(frozen=True)
class AnalysedSeries:
    """`sources[k]` is the header of the slice a finding's z index k refers to (ImageVolume.slice_uids order)."""

    series_uid: str
    sources: list[Dataset]
    findings: list[Finding]
    spacing_known: bool = True  # False: sizes were left out of the findings, and the SR says why


NO_SPACING = "Measurements omitted: the image header gives no pixel spacing, so sizes would be guesses"


def analysed_series(
    series_uid: str, sources: list[Dataset], findings: list[Finding], spacing_known: bool
) -> AnalysedSeries:
    """The series as the encoders take it; without a known pixel spacing its findings carry no measurements."""
    if not spacing_known:
        findings = [replace(f, measurements=()) for f in findings]
    return AnalysedSeries(series_uid, sources, findings, spacing_known)


_TEMPORAL = {"DA": DA, "TM": TM, "DT": DT}


def repair_temporal_values(headers: list[Dataset]) -> int:
    """Blank dates and times a scanner wrote invalidly (highdicom refuses to copy them into the SR and SEG);
    they are Type 2 or 3 where we copy them. In place; returns how many were blanked."""
    repaired = 0
    for ds in headers:
        for raw in ds.elements():  # unconverted: converting every element of 300 headers cost 0.05-0.2 s
            kind = _TEMPORAL.get(_vr(raw))
            if kind is None:
                continue
            elem = ds[raw.tag]
            if elem.VM != 1 or not elem.value:
                continue
            try:
                kind(elem.value)
            except (ValueError, TypeError):
                elem.value = ""
                repaired += 1
    return repaired


def _vr(element: DataElement | RawDataElement) -> str | None:
    """An element's VR without converting it; an implicit VR file's raw elements carry none: the dictionary's."""
    if element.VR is not None:
        return element.VR
    try:
        return dictionary_VR(element.tag)
    except KeyError:  # private or unknown: never one we copy
        return None


def coded(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def unit(ucum: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(ucum, "UCUM", UCUM[ucum])


def key_slices(series: list[AnalysedSeries]) -> list[Dataset]:
    """The headers of the slices the findings are on (each finding's centre slice), once each, in finding order."""
    slices = {s.sources[f.centre_slice].SOPInstanceUID: s.sources[f.centre_slice] for s in series for f in s.findings}
    return list(slices.values())


def copy_body_part(source: Dataset, target: Dataset) -> None:
    """Body Part Examined and Laterality from the source image: Laterality is Type 2C on the body part in the
    General Series module, and dciodvfy wants it absent for an unpaired part it knows of."""
    for keyword in ("BodyPartExamined", "Laterality"):
        if source.get(keyword):
            setattr(target, keyword, source.get(keyword))
