"""Secondary Capture key images: what every PACS viewer shows of a finding, even one that shows no SR or SEG.

One RGB image per finding, in the original study in its own series: the finding's centre slice in the
header's window, the box, the label, probability, model and version, and "AI output - not for diagnostic
use" burned into the pixels (BurnedInAnnotation YES), drawn by the same renderer as the worklist thumbnail.
"""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
from pydicom import Dataset

from dicomnode.results import keyimage
from dicomnode.results.content import AnalysedSeries, copy_body_part
from dicomnode.results.identity import KEY_IMAGE_SERIES_NUMBER, MANUFACTURER, ResultIdentity
from dicomnode.results.seg import contributing_equipment
from models.findings import Finding

SIDE = 1024  # pixels on the longer side: the caption stays legible in a PACS thumbnail, the file stays small


def build_key_images(series: list[AnalysedSeries], identity: ResultIdentity) -> list[Dataset]:
    """One Secondary Capture per finding, numbered as the SR's groups are."""
    images = []
    index = 0
    for s in series:
        for f in s.findings:
            images.append(_key_image(s, f, index, identity))
            index += 1
    return images


def _key_image(s: AnalysedSeries, f: Finding, index: int, identity: ResultIdentity) -> Dataset:
    source = s.sources[f.centre_slice]
    grey = keyimage.grey_slice(pydicom.dcmread(source.filename))  # the header copy has no pixels
    _, y0, x0, _, y1, x1 = f.bbox
    key = keyimage.KeyImage(
        (y0, x0, y1, x1), keyimage.caption(f.label, f.probability, identity.model, identity.model_version)
    )
    rgb = np.asarray(keyimage.render(grey, key, SIDE))
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=rgb,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=identity.key_image_series_uid,
        series_number=KEY_IMAGE_SERIES_NUMBER,
        sop_instance_uid=identity.key_image_uid(index),
        instance_number=index + 1,
        manufacturer=MANUFACTURER,
        patient_orientation=_orientation(source),
        contributing_equipment=[contributing_equipment(identity)],
    )
    sc.SeriesDescription = f"{identity.description} key images"[:64]
    sc.ImageComments = keyimage.NOT_FOR_DIAGNOSIS
    sc.BurnedInAnnotation = "YES"
    copy_body_part(source, sc)
    sc.DerivationDescription = f"{f.label} found by {identity.model} {identity.model_version}; box and caption drawn"
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [reference]
    return sc


def _orientation(source: Dataset) -> tuple[str, str]:
    """Patient Orientation of the slice's rows and columns (PS3.3 C.7.6.1.1.1), from its header if it has it."""
    given = source.get("PatientOrientation")
    if given and len(given) == 2:
        return str(given[0]), str(given[1])
    iop = source.get("ImageOrientationPatient")
    if not iop:
        return ("", "")
    return _direction(iop[:3]), _direction(iop[3:])


def _direction(cosines: list[float]) -> str:
    """The patient directions a row or column runs towards, strongest first (L/R, P/A, H/F)."""
    letters = [("L", "R"), ("P", "A"), ("H", "F")]
    ranked = sorted(range(3), key=lambda i: -abs(float(cosines[i])))
    return "".join(letters[i][0 if float(cosines[i]) > 0 else 1] for i in ranked if abs(float(cosines[i])) > 0.25)
