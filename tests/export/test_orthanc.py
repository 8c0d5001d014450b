"""Orthanc as the destination PACS (a consumer we did not write): every kind of result arrives, Orthanc lists it
in its REST API under the original study, and Orthanc's own preview of the key image renders it."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from tests.support.dicom_files import series
from tests.support.helpers import node_cli, storescu, wait_for
from tests.support.pacs import OrthancPACS
from tests.support.pipeline import analysis_overrides, rule

SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.34": "sr",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.66.4": "seg",
    "1.2.840.10008.5.1.4.1.1.7": "sc",
    "1.2.840.10008.5.1.4.1.1.11.1": "gsps",
    "1.2.840.10008.5.1.4.1.1.88.59": "kos",
}


def test_orthanc_receives_lists_and_previews_every_kind(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    orthanc = OrthancPACS(tmp_path / "orthanc").start()
    try:
        rules = [{**rule("ct", ["standin-hyperdense"], modality=["CT"]), "destinations": [orthanc.destination]}]
        every_kind = {orthanc.destination: list(SOP_CLASSES.values())}
        node = start_node(
            export={"poll_seconds": 0.2, "kinds_by_destination": every_kind}, **analysis_overrides(rules=rules)
        )
        spec, files = series(tmp_path, 10, lesion_hu=80)
        assert storescu(node, files).returncode == 0

        def sent() -> list[dict] | None:
            rows = [json.loads(line) for line in node_cli(node, "exports", "--json").stdout.splitlines()]
            return rows if len(rows) == 5 and all(r["state"] == "sent" for r in rows) else None

        wait_for(sent, timeout=120)
        [study] = orthanc.get("/studies?expand").json()
        assert study["MainDicomTags"]["StudyInstanceUID"] == spec.study_uid
        kinds = {}
        for instance in orthanc.get("/instances").json():
            tags = orthanc.get(f"/instances/{instance}/simplified-tags").json()
            kinds[SOP_CLASSES[tags["SOPClassUID"]]] = instance
            assert tags["StudyInstanceUID"] == spec.study_uid and tags["PatientID"] == spec.patient.patient_id
        assert set(kinds) == {"sr", "seg", "sc", "gsps", "kos"}
        preview = orthanc.get(f"/instances/{kinds['sc']}/preview")
        assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
        pixels = np.asarray(Image.open(io.BytesIO(preview.content)).convert("RGB"))
        assert pixels.shape[1] == 1024
        yellow = (pixels[..., 0] > 200) & (pixels[..., 1] > 180) & (pixels[..., 2] < 60)
        assert yellow.sum() > 100, "Orthanc's preview shows no box: it did not decode the key image as sent"
    finally:
        orthanc.stop()
