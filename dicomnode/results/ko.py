"""Key Object Selection: the key slices of a result flagged "Of Interest", for viewers that list KOS documents.
On request (export.kinds "kos")."""

from __future__ import annotations

import highdicom as hd
from pydicom import Dataset
from pydicom.sr.codedict import codes

from dicomnode.results.content import AnalysedSeries, key_slices
from dicomnode.results.identity import KEY_OBJECTS_SERIES_NUMBER, MANUFACTURER, ResultIdentity
from dicomnode.results.keyimage import NOT_FOR_DIAGNOSIS
from dicomnode.results.seg import contributing_equipment


def build_key_object_selection(series: list[AnalysedSeries], identity: ResultIdentity) -> list[Dataset]:
    """One KOS flagging every finding's centre slice, or none when nothing was found."""
    key = key_slices(series)
    if not key:
        return []
    labels = sorted({f.label for s in series for f in s.findings})
    content = hd.ko.KeyObjectSelection(
        document_title=codes.DCM.OfInterest,
        referenced_objects=key,
        description=f"{', '.join(labels)} found by {identity.model} {identity.model_version}. {NOT_FOR_DIAGNOSIS}"[
            :1024
        ],
    )
    kos = hd.ko.KeyObjectSelectionDocument(
        evidence=key,
        content=content,
        series_instance_uid=identity.key_objects_series_uid,
        series_number=KEY_OBJECTS_SERIES_NUMBER,
        sop_instance_uid=identity.key_objects_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        contributing_equipment=[contributing_equipment(identity)],
    )
    kos.SeriesDescription = f"{identity.description} key slices"[:64]
    return [kos]
