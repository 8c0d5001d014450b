"""What the encoders are given: each analysed series with its source headers (in volume order) and findings,
and the codes the standard's templates need, written once."""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes

from models.findings import Finding
from models.manifest import Code

UCUM = {"ml": "milliliter", "mm": "millimeter", "mm2": "square millimeter", "1": "no units"}
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


def coded(code: Code) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(code.value, code.scheme, code.meaning)


def unit(ucum: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(ucum, "UCUM", UCUM[ucum])
