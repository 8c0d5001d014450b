"""End to end, in both modes: dcmtk storescu pushes the demo's five synthetic studies (CT heads and chest
radiographs, routine and acute, with order priorities) to `dicomnode serve`; the built-in models analyse them
(embedded: inside the node; distributed: a real redis-server and a separate `dicomnode worker`); SR, SEG, key image
reach a dcmtk storescp PACS stand-in; the worklist puts the acute studies first; health, metrics, the audit
trail and JSON logs say what happened, without patient data. Also `dicomnode demo` itself."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pydicom
import pytest

from dicomnode.demo.run import STUDIES, write_study
from models.registry import builtin_spec
from tests.support.helpers import CHILD_ENV, READERS, node_cli, storescu, wait_for
from tests.support.pacs import StoreSCP
from tests.support.pipeline import analysis_overrides, rule

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
EXPECTED_ORDER = [
    "CT head, routine order, acute bleed",  # ROUTINE 30 + AI 80 x p x 1.0
    "CT head, STAT order, normal",  # STAT 100
    "Chest X-ray, LOW order, pneumothorax",  # LOW 10 + AI 80 x p x 0.9
    "Chest X-ray, HIGH order, normal",  # HIGH 60
    "CT head, routine order, normal",  # ROUTINE 30
]


@pytest.fixture
def pacs(tmp_path: Path):  # noqa: ANN201
    scp = StoreSCP(tmp_path / "pacs").start()
    yield scp
    scp.stop()


@pytest.mark.parametrize("mode", ["embedded", "distributed"])
def test_scanner_push_to_pacs_results_and_reordered_worklist(
    mode: str, start_node, start_worker, pacs: StoreSCP, tmp_path: Path, request
) -> None:  # noqa: ANN001
    redis_url = request.getfixturevalue("redis_url") if mode == "distributed" else None
    rules = [
        rule("ct-head", ["ct-hemorrhage"], modality=["CT"], body_part=["HEAD"]),
        rule("chest", ["cxr-pneumothorax"], modality=["DX", "CR"], body_part=["CHEST"]),
    ]
    for r in rules:
        r["destinations"] = [pacs.destination]
    node = start_node(**analysis_overrides(redis_url, rules=rules), log={"level": "DEBUG", "format": "json"})
    if mode == "distributed":
        start_worker(node)

    titles = {}
    for number, study in enumerate(STUDIES, 1):
        uid, files = write_study(study, tmp_path / "studies" / str(number), number)
        titles[uid] = study.title
        assert storescu(node, files).returncode == 0

    def received() -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        for path in pacs.received():
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            found.setdefault(str(ds.StudyInstanceUID), []).append(str(ds.Modality))
        return found

    bleed = next(uid for uid, title in titles.items() if "bleed" in title)
    items = wait_for(lambda: len(w := _worklist(node)) == 5 and all(_analysed(node, i) for i in w) and w, timeout=240)

    def all_sent() -> bool:  # every result is armed with its study's analysis: then wait for the outbox to empty
        text = httpx.get(f"{node.http_url}/metrics", timeout=10).text
        return 'dicomnode_exports{state="sent"}' in text and not any(
            f'dicomnode_exports{{state="{s}"}} ' in text and f'dicomnode_exports{{state="{s}"}} 0.0' not in text
            for s in ("pending", "sending")
        )

    wait_for(all_sent, timeout=120)
    got = received()
    assert len(got) == 5
    assert sorted(got[bleed]) == ["OT", "SEG", "SR"], "the segmenting model's finding: SR, SEG and its key image"
    assert all("SR" in kinds for kinds in got.values()), "every analysed study gets its SR (findings or absent)"

    items = _worklist(node)
    assert [titles[i["study_instance_uid"]] for i in items] == EXPECTED_ORDER
    assert items[0]["explanation"].startswith("AI: intracranial hemorrhage p=")
    assert items[2]["explanation"].startswith("AI: pneumothorax p=")

    health = httpx.get(f"{node.http_url}/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert health.json()["checks"]["broker"]["detail"] == ("redis answers" if redis_url else "embedded (no broker)")
    metrics = httpx.get(f"{node.http_url}/metrics", timeout=10).text
    assert "dicomnode_instances_received_total 98.0" in metrics  # 3 CTs of 32 slices + 2 radiographs
    assert (
        'dicomnode_jobs{state="done"} 5.0' in metrics and 'dicomnode_worklist_items{state="SCHEDULED"} 5.0' in metrics
    )
    assert 'dicomnode_associations_total{outcome="accepted",reason=""}' in metrics
    assert "dicomnode_inference_seconds_count 5.0" in metrics
    sent = sum(len(k) for k in got.values())
    assert f'dicomnode_exports{{state="sent"}} {sent}.0' in httpx.get(f"{node.http_url}/metrics").text

    trail = [json.loads(line) for line in node_cli(node, "audit", bleed, "--json").stdout.splitlines()]
    acts = [(a["action"], a["actor"]) for a in trail]
    assert acts[0] == ("received", "STORESCU") and "32 instances from STORESCU@127.0.0.1" in trail[0]["detail"]
    assert ("analysed", f"ct-hemorrhage {builtin_spec('ct-hemorrhage').version}") in acts
    assert sum(1 for a in acts if a == ("exported", pacs.destination)) == 3, "SR, SEG and key image, each once"

    log = node.log()
    lines = [json.loads(line) for line in log.splitlines() if line.strip()]
    assert {"time", "level", "logger", "message"} <= set(lines[0]), "log.format json: one JSON object per line"
    assert "DEMO^PATIENT" not in log and "DEMOACC" not in log and "DEMO0001" not in log, "no patient data in logs"


def test_dicomnode_demo_runs_and_explains_itself(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dicomnode", "demo", "--workdir", str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        timeout=600,
        env=CHILD_ENV,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "pushed CT head, routine order, acute bleed (32 instances) with storescu" in out
    assert "CT head, routine order, acute bleed      SEG, SR, key image" in out
    assert "   1. CT head, routine order, acute bleed      AI: intracranial hemorrhage p=" in out
    assert "not for clinical use" in out


def _worklist(node) -> list[dict]:  # noqa: ANN001
    return httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]


def _analysed(node, item: dict) -> bool:  # noqa: ANN001
    detail = httpx.get(f"{node.http_url}/api/worklist/{item['uid']}", headers=ADA, timeout=10).json()
    return any(h["event"] == "ai" for h in detail["history"])
