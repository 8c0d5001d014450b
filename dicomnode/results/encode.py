"""One result to its DICOM instances: the SEG of each series with masks, the SR that references them, and a
Secondary Capture key image per finding."""

from __future__ import annotations

import logging
from collections.abc import Callable

from pydicom import Dataset

from dicomnode.config.export import ResultKind
from dicomnode.errors import DicomnodeError
from dicomnode.results.content import AnalysedSeries, repair_temporal_values
from dicomnode.results.identity import ResultIdentity
from dicomnode.results.ko import build_key_object_selection
from dicomnode.results.pr import build_presentation_states
from dicomnode.results.sc import build_key_images
from dicomnode.results.seg import build_seg
from dicomnode.results.sr import build_out_of_scope_sr, build_sr
from models.manifest import Code

log = logging.getLogger(__name__)


class ResultEncodingError(DicomnodeError):
    """The result could not be encoded as DICOM. The message quotes no value of the source headers."""


# Values of these VRs may be patient data (names, IDs, dates, free text); a message quoting one is withheld.
_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UR", "UT"}


def encode_result(
    series: list[AnalysedSeries], identity: ResultIdentity, looked_for: list[Code], kinds: set[ResultKind]
) -> list[Dataset]:
    """SEGs first, then the SR, then what `kinds` asks for besides (key images, presentation states, key object
    selection). Raises ResultEncodingError (retrying will not help)."""
    sources = [ds for s in series for ds in s.sources]
    return _guarded(lambda: _encode(series, identity, looked_for, kinds), sources)


def encode_out_of_scope(sources: list[Dataset], identity: ResultIdentity, reason: str) -> list[Dataset]:
    """The SR saying the model was not run on the study, and why. Raises ResultEncodingError."""
    return _guarded(lambda: [build_out_of_scope_sr(sources, identity, reason)], sources)


def _guarded(encode: Callable[[], list[Dataset]], sources: list[Dataset]) -> list[Dataset]:
    """Run an encoder over repaired headers; any failure becomes a ResultEncodingError quoting no header value."""
    repaired = repair_temporal_values(sources)
    if repaired:
        log.warning("%d invalid date/time values left empty in the results", repaired)
    try:
        return encode()
    except Exception as exc:
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        origin = where.tb_frame.f_code.co_name if where is not None else "?"
        detail = str(exc) if quotes_no_values(str(exc), sources) else None
        raise ResultEncodingError(
            f"cannot encode the result as DICOM: {type(exc).__name__} in {origin}: "
            + (detail or "(details withheld: they quote values of the images' headers)")
        ) from None


def quotes_no_values(message: str, datasets: list[Dataset]) -> bool:
    """True if `message` contains no text value (3+ characters) of any header: safe to log and store."""
    lowered = message.lower()
    for ds in datasets:
        for element in ds.iterall():
            if element.VR not in _TEXT_VRS or element.value in (None, ""):
                continue
            values = element.value if element.VM > 1 else [element.value]
            for value in values:
                for part in str(value).replace("^", " ").split():
                    if len(part) >= 3 and part.lower() in lowered:
                        return False
    return True


def _encode(
    series: list[AnalysedSeries], identity: ResultIdentity, looked_for: list[Code], kinds: set[ResultKind]
) -> list[Dataset]:
    segs: list[Dataset] = []
    first_index = 0
    for s in series:
        seg = build_seg(s, identity, first_index)
        if seg is not None:
            segs.append(seg)
        first_index += len(s.findings)
    out = [*segs, build_sr(series, identity, looked_for, segs)]
    for kind, build in OPTIONAL:
        if kind in kinds:
            out.extend(build(series, identity))
    return out


# The kinds encoded only when a destination takes them; SR and SEG are the result itself, always kept.
OPTIONAL = [
    (ResultKind.SC, build_key_images),
    (ResultKind.GSPS, build_presentation_states),
    (ResultKind.KOS, build_key_object_selection),
]
