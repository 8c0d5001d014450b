"""From the list to the images: the viewer link carries the study's UID (REST and UPS-RS), and a flagged finding's
key image is served as a PNG only with a reader token."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from dicomnode.config.settings import ConfigError, Settings, load_settings
from dicomnode.config.worklist import WorklistConfig
from dicomnode.results import keyimage
from tests.support.dicom_files import series
from tests.support.helpers import READERS, storescu, wait_for
from tests.support.pipeline import analysis_overrides

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
VIEWER = "https://viewer.example/viewer?StudyInstanceUIDs={study_instance_uid}&acc={accession_number}"


def test_viewer_template_is_checked_and_values_are_url_encoded() -> None:
    config = WorklistConfig(viewer_url=VIEWER)
    assert config.viewer_link(study_instance_uid="1.2.3", accession_number="A&B 1", patient_id="P") == (
        "https://viewer.example/viewer?StudyInstanceUIDs=1.2.3&acc=A%26B%201"
    )
    with pytest.raises(ValueError, match="unknown placeholder {patient_name}"):
        WorklistConfig(viewer_url="https://v.example/{patient_name}")
    with pytest.raises(ValueError, match="http"):
        WorklistConfig(viewer_url="javascript:alert(1)//{study_instance_uid}")
    assert WorklistConfig().viewer_link(study_instance_uid="1.2.3") is None
    assert Settings(worklist={"viewer_url": VIEWER}, routing={"rules": []}).worklist.viewer_url == VIEWER


def test_a_bad_viewer_template_stops_the_configuration_naming_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[worklist]\nviewer_url = "https://v.example/{patientname}"\n')
    with pytest.raises(ConfigError, match=r"worklist.viewer_url .*unknown placeholder \{patientname\}"):
        load_settings(config)


def test_the_renderer_boxes_the_finding_outside_its_region_and_adds_the_caption_band() -> None:
    grey = np.full((100, 80), 60, dtype=np.uint8)
    image = keyimage.render(grey, keyimage.KeyImage((40, 30, 50, 45), ("bleed 93%", "model 1.0")))
    pixels = np.asarray(image)
    assert image.size == (80, 100 + 15 * 3 + 6), "three caption lines (11 px text) below the image, none over it"
    yellow = np.all(pixels[:100] == (255, 214, 0), axis=-1)
    rows, cols = np.nonzero(yellow)
    assert rows.min() < 40 and rows.max() >= 50 and cols.min() < 30 and cols.max() >= 45
    assert not yellow[41:49, 31:44].any(), "the outline never covers the region itself"
    assert (pixels[100:] > 200).sum() > 100, "the caption is written, white on black"


def test_flagged_study_has_a_viewer_link_and_a_key_image(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    overrides = analysis_overrides()
    node = start_node(worklist={"viewer_url": VIEWER}, **overrides)
    spec, files = series(tmp_path, 12, lesion_hu=80, body_part="HEAD", accession="ACC 7")
    assert storescu(node, files).returncode == 0

    def flagged() -> dict | None:
        listed = httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]
        return next((i for i in listed if i["ai_status"] == "flagged"), None)

    item = wait_for(flagged, timeout=90)
    assert item["viewer_url"] == f"https://viewer.example/viewer?StudyInstanceUIDs={spec.study_uid}&acc=ACC%207"
    ups = httpx.get(f"{node.http_url}/workitems/{item['uid']}", headers=ADA, timeout=10).json()[0]
    assert ups["00081190"]["Value"] == [item["viewer_url"]]

    [flag] = item["flags"]
    url = f"{node.http_url}/api/worklist/{item['uid']}/key-image/{flag['result_uid']}/{flag['finding_index']}.png"
    assert httpx.get(url, timeout=10).status_code == 401, "the key image holds patient pixels: token only"
    answer = httpx.get(url, headers=ADA, timeout=30)
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(answer.content))
    assert image.mode == "RGB" and image.width == spec.columns
    wrong = url.replace(f"/{flag['finding_index']}.png", "/7.png")
    assert httpx.get(wrong, headers=ADA, timeout=10).status_code == 404
