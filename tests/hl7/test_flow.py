"""The node with the RIS on both sides: python-hl7's `mllp_send` (an HL7 sender we did not write) sends a STAT
order; dcmtk storescu sends its study with a ROUTINE header; the worklist item is STAT; the built-in model's
result reaches a python-hl7 MLLP server as an ORU^R01 with the order's identifiers, then the priority change; a
cancel from the RIS cancels the item. The metrics count every message, and the log has no patient data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from dicomnode.demo.run import STUDIES, write_study
from tests.support.helpers import CHILD_ENV, READERS, free_port, storescu, wait_for
from tests.support.hl7_messages import PATIENT_NAME, orm
from tests.support.hl7_receiver import Hl7Receiver
from tests.support.pipeline import analysis_overrides, rule

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}
BLEED = next(s for s in STUDIES if s.acute and s.kind == "ct")
NUMBER = 7  # the study's accession is DEMOACC0007


def mllp_send(port: int, message: str, tmp: Path) -> str:
    """python-hl7's own command-line sender; returns what it printed (the ACK)."""
    path = tmp / "message.hl7"
    path.write_text(message.replace("\r", "\n") + "\n")
    sender = Path(sys.executable).with_name("mllp_send")
    done = subprocess.run(
        [str(sender), "--port", str(port), "--file", str(path), "--loose", "127.0.0.1"],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def ris():  # noqa: ANN201
    receiver = Hl7Receiver()
    yield receiver
    receiver.close()


def _field(message, segment: str, number: int) -> str:  # noqa: ANN001
    return str(message.segment(segment)[number])


def _item(node) -> dict | None:  # noqa: ANN001
    items = httpx.get(f"{node.http_url}/api/worklist", headers=ADA, timeout=10).json()["items"]
    return items[0] if items else None


def test_orders_in_results_and_priority_out(start_node, ris: Hl7Receiver, tmp_path: Path) -> None:  # noqa: ANN001
    hl7_port = free_port()
    ct = rule("ct-head", ["ct-hemorrhage"], modality=["CT"], body_part=["HEAD"])
    ct["destinations"] = [ris.destination]
    node = start_node(
        **analysis_overrides(rules=[ct]),
        hl7={"enabled": True, "host": "127.0.0.1", "port": hl7_port, "priority_update": True, "poll_seconds": 0.2},
    )
    accession = f"DEMOACC{NUMBER:04d}"
    ack = mllp_send(hl7_port, orm(accession, priority="S", control_id="ORD1"), tmp_path)
    assert "MSA|AA|ORD1" in ack

    _, files = write_study(BLEED, tmp_path / "study", NUMBER)  # its header says ROUTINE
    assert storescu(node, files).returncode == 0
    item = wait_for(lambda: _item(node), timeout=60)
    assert item["priority"] == "STAT"

    wait_for(lambda: len(ris.accepted()) >= 2, timeout=180)
    oru, change = ris.accepted()[:2]
    assert _field(oru, "MSH", 9) == "ORU^R01^ORU_R01"
    assert _field(oru, "OBR", 18) == accession
    assert _field(oru, "ORC", 2) == f"PLC{accession}"
    statuses = [str(o[5]).split("^")[0] for o in oru.segments("OBX") if str(o[3]).startswith("AISTATUS")]
    assert statuses == ["flagged"]
    assert (_field(change, "MSH", 9), _field(change, "ORC", 1)) == ("ORM^O01^ORM_O01", "XO")

    ack = mllp_send(hl7_port, orm(accession, control="CA", control_id="ORD2"), tmp_path)
    assert "MSA|AA|ORD2" in ack
    wait_for(lambda: _item(node) is None, timeout=30)  # cancelled: off the worklist

    metrics = httpx.get(f"{node.http_url}/metrics", timeout=10).text
    assert 'dicomnode_hl7_messages_total{direction="in",outcome="AA",type="ORM^O01"} 2.0' in metrics
    assert 'dicomnode_hl7_messages_total{direction="out",outcome="AA",type="ORU^R01"} 1.0' in metrics
    log = node.log()
    assert "control_id=ORD1" in log
    for secret in (PATIENT_NAME, accession, "WELBY"):
        assert secret not in log
