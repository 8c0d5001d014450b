"""A real node (embedded analysis, dcmtk as the scanner): a flagged, a negative, a failed, an out-of-scope and a
not-analysed study read five different AI statuses in REST, the CLI and the metrics; the failed and the
out-of-scope ones say why in their history."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np

from dicomnode.catalog.db import open_catalog
from dicomnode.demo.synthetic import SeriesSpec, radiograph
from tests.support.dicom_files import series
from tests.support.helpers import READERS, node_cli, storescu, wait_for
from tests.support.pipeline import analysis_overrides, rule, wait_jobs

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


def test_five_studies_five_statuses(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    rules = [
        rule("ct", ["standin-hyperdense"], modality=["CT"], body_part=["HEAD"]),
        rule("too-wide", ["standin-hyperdense"], modality=["DX"]),  # a CT model fed radiographs
    ]
    node = start_node(**analysis_overrides(rules=rules))
    flagged, flagged_files = series(tmp_path, 12, lesion_hu=80, body_part="HEAD")
    negative, negative_files = series(tmp_path, 12, body_part="HEAD")
    failed, failed_files = series(tmp_path, 8, body_part="HEAD")
    del failed_files[4]  # a missing slice: cannot be read as one stack
    unrouted, unrouted_files = series(tmp_path, 3, body_part="CHEST")
    xr = SeriesSpec(modality="DX", body_part="CHEST")
    radiograph(xr, np.random.default_rng(0).random((64, 64))).save_as(tmp_path / "xr.dcm", enforce_file_format=True)
    for files in (flagged_files, negative_files, failed_files, unrouted_files, [tmp_path / "xr.dcm"]):
        assert storescu(node, files).returncode == 0
    wait_jobs(open_catalog(node.catalog_url), 4, {"done", "failed", "out of scope"}, timeout=120)

    expected = {
        flagged.study_uid: "flagged",
        negative.study_uid: "negative",
        failed.study_uid: "failed",
        xr.study_uid: "out_of_scope",
        unrouted.study_uid: "not_analysed",
    }

    def statuses() -> dict[str, str] | None:
        listed = httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]
        found = {i["study_instance_uid"]: i["ai_status"] for i in listed}
        return found if found == expected else None

    items = wait_for(statuses, timeout=30)
    assert sorted(items.values()) == sorted(expected.values()), "five studies, five statuses"

    listed = httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]
    by_study = {i["study_instance_uid"]: i for i in listed}
    for study, word in (
        (failed.study_uid, "evenly spaced"),
        (xr.study_uid, "modality DX; the model accepts CT"),
    ):
        detail = httpx.get(f"{node.http_url}/api/worklist/{by_study[study]['uid']}", headers=ADA, timeout=10).json()
        assert word in detail["ai"][0]["reason"]
        assert any(word in e["reason"] for e in detail["history"] if e["event"] in ("ai failed", "out of scope"))
        assert "nothing found" not in json.dumps(detail["history"])

    cli = node_cli(node, "worklist", "--ai-status", "out_of_scope", "--json")
    assert [json.loads(line)["study_instance_uid"] for line in cli.stdout.splitlines()] == [xr.study_uid]
    metrics = httpx.get(f"{node.http_url}/metrics", timeout=10).text
    for status in ("flagged", "negative", "failed", "out_of_scope", "not_analysed"):
        assert f'dicomnode_worklist_ai_status{{status="{status}"}} 1.0' in metrics, status
