"""The key image of a flagged finding, for the worklist page: found through the catalog (the finding's result, its
centre slice's stored instance) and drawn by the results stage's renderer."""

from __future__ import annotations

from pathlib import Path

import pydicom
from sqlalchemy import Connection, select

from dicomnode.catalog.schema import Instance, Result
from dicomnode.errors import DicomnodeError
from dicomnode.results import keyimage
from models.findings import centre_slice

THUMBNAIL_SIDE = 384  # pixels: readable beside a worklist row, enlarged by the browser on click
_results, _instances = Result.__table__, Instance.__table__


class NoKeyImage(DicomnodeError):
    """The study has no such finding, or its slice is no longer stored."""


def key_image_png(conn: Connection, storage_root: Path, study_pk: int, result_uid: str, index: int) -> bytes:
    """The PNG of finding `index` of the study's result `result_uid`."""
    row = conn.execute(
        select(_results.c.findings, _results.c.model, _results.c.model_version).where(
            _results.c.result_uid == result_uid, _results.c.study_fk == study_pk
        )
    ).first()
    if row is None or not 0 <= index < len(row.findings):
        raise NoKeyImage(f"no finding {index} in result {result_uid} of this study")
    finding = row.findings[index]
    z0, y0, x0, z1, y1, x1 = finding["bbox"]
    sop_uid = finding["slice_uids"][centre_slice(finding["bbox"], finding["centre"]) - z0]
    path = conn.execute(select(_instances.c.path).where(_instances.c.sop_instance_uid == sop_uid)).scalar()
    if path is None or not (storage_root / path).is_file():
        raise NoKeyImage(f"the slice of finding {index} is no longer stored")
    grey = keyimage.grey_slice(pydicom.dcmread(storage_root / path))
    caption = keyimage.caption(finding["label"], finding["probability"], row.model, row.model_version)
    side = min(THUMBNAIL_SIDE, max(grey.shape))  # shrunk to a thumbnail, never enlarged
    image = keyimage.render(grey, keyimage.KeyImage((y0, x0, y1, x1), caption), side)
    return keyimage.png(image)
