"""The HL7 outbox against python-hl7's MLLP server as the RIS: AA sent, AE retried, no answer retried, AR dead at
once; what we send parses and validates with hl7apy against v2.5.1, strict."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message
from sqlalchemy import Engine, select, update

from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import Hl7Message, Study
from dicomnode.config.hl7 import Hl7Config
from dicomnode.config.worklist import WorklistConfig
from dicomnode.export import hl7 as hl7_export
from dicomnode.hl7 import messages
from dicomnode.hl7.orders import record_order
from dicomnode.hl7.results import AIReport
from dicomnode.ops.metrics import NodeMetrics
from tests.support.hl7_messages import orm
from tests.support.hl7_receiver import Hl7Receiver
from tests.support.worklist_data import add_study

_rows = Hl7Message.__table__
BLEED = {
    "label": "intracranial hemorrhage",
    "code": {"scheme": "SCT", "value": "1386000", "meaning": "Intracranial hemorrhage"},
    "probability": 0.93,
    "urgency": 1.0,
    "measurements": [{"name": "volume", "value": 12.34, "unit": "ml"}],
}


@pytest.fixture
def catalog(tmp_path: Path) -> Engine:
    return open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Hl7Receiver]:
    ris = Hl7Receiver(getattr(request, "param", []))
    yield ris
    ris.close()


def _config(**keys: object) -> Hl7Config:
    return Hl7Config(ack_timeout_s=1, retry_backoff_s=60, max_attempts=5, **keys)


def _arm(catalog: Engine, receiver: Hl7Receiver, config: Hl7Config, report: AIReport, with_order: bool = True) -> int:
    with catalog.begin() as conn:
        study = add_study(conn, "ROUTINE", minutes_ago=3)
        if with_order:
            accession = conn.execute(select(Study.accession_number).where(Study.id == study)).scalar()
            msg, header = messages.read_header(orm(accession))
            record_order(conn, messages.parse_order(msg, header, config.accession_fields), WorklistConfig())
        hl7_export.enqueue(conn, study, "2.25.42", report, [receiver.destination, "PACS@127.0.0.1:1"], config)
    return study


def _send_round(catalog: Engine, config: Hl7Config) -> list:
    with catalog.begin() as conn:  # due now: a round must not wait for the backoff
        conn.execute(update(_rows).values(not_before=utcnow()))
    hl7_export.Hl7Sender(catalog, config, None, NodeMetrics()).send_due()  # type: ignore[arg-type]
    with catalog.connect() as conn:
        return conn.execute(select(_rows).order_by(_rows.c.id)).all()


@pytest.mark.parametrize("receiver", [["AE", None, "AA"]], indirect=True)
def test_ae_and_silence_are_retried_until_aa(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config()
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "flagged", [BLEED]))
    (row,) = _send_round(catalog, config)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "answered AE" in row.last_error
    (row,) = _send_round(catalog, config)
    assert (row.state, row.attempts) == ("pending", 2)
    assert "no answer" in row.last_error
    (row,) = _send_round(catalog, config)
    assert (row.state, row.attempts, row.last_error) == ("sent", 3, None)
    assert len(receiver.received) == 3
    assert len({text for _, text in receiver.received}) == 1  # the same message, the same control ID, each time


@pytest.mark.parametrize("receiver", [["AR"]], indirect=True)
def test_ar_is_dead_at_once_and_retry_by_hand_sends_it(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config()
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "negative", []))
    (row,) = _send_round(catalog, config)
    assert (row.state, row.attempts) == ("dead", 1)
    assert "answered AR" in row.last_error
    with catalog.begin() as conn:
        assert hl7_export.retry_dead(conn, row.id)
    (row,) = _send_round(catalog, config)
    assert row.state == "sent"


def test_an_unreachable_receiver_is_retried(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config()
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "negative", []))
    receiver.close()
    (row,) = _send_round(catalog, config)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "unreachable" in row.last_error


def _strict(text: str):  # noqa: ANN202
    return parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)


def test_the_oru_is_valid_v251_and_carries_the_order_and_the_finding(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config()
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "flagged", [BLEED]))
    (row,) = _send_round(catalog, config)
    message = _strict(row.message)
    assert message.validate()  # hl7apy, v2.5.1, strict: structure, cardinalities, data types
    result = message.oru_r01_patient_result
    order = result.oru_r01_order_observation
    assert order.orc.orc_2.to_er7().startswith("PLCACC")  # the RIS's own order numbers
    assert order.obr.obr_3.to_er7().startswith("FILACC")
    assert order.obr.obr_18.to_er7().startswith("ACC")
    assert "not for diagnostic use" in order.nte.nte_3.to_er7()
    obx = {o.obx.obx_3.obx_3_1.to_er7(): o.obx for o in order.oru_r01_observation}
    assert obx["AISTATUS"].obx_5.to_er7().startswith("flagged^")
    assert obx["AIFINDING"].obx_5.to_er7() == "1386000^Intracranial hemorrhage^SCT"
    assert obx["AIPROB"].obx_5.to_er7() == "0.930"
    assert obx["AIMEAS"].obx_6.to_er7() == "ml^milliliter^UCUM"
    assert obx["AIMEAS"].obx_5.to_er7() == "12.3"


@pytest.mark.parametrize(("status", "reason"), [("failed", "unreadable pixel data"), ("out_of_scope", "CT chest")])
def test_no_result_is_said_as_such(catalog: Engine, receiver: Hl7Receiver, status: str, reason: str) -> None:
    config = _config()
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "", status, [], reason), with_order=False)
    (row,) = _send_round(catalog, config)
    message = _strict(row.message)
    assert message.validate()
    order = message.oru_r01_patient_result.oru_r01_order_observation
    obx = {o.obx.obx_3.obx_3_1.to_er7(): o.obx for o in order.oru_r01_observation}
    assert obx["AISTATUS"].obx_5.to_er7().startswith(f"{status}^")
    assert obx["AIREASON"].obx_5.to_er7() == reason
    assert "AIFINDING" not in obx


def test_priority_update_raises_the_order_to_stat(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config(priority_update=True, priority_update_min_urgency=0.8)
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "flagged", [BLEED]))
    rows = _send_round(catalog, config)
    assert [(r.kind, r.state) for r in rows] == [("ORU^R01", "sent"), ("ORM^O01", "sent")]
    change = _strict(rows[1].message)
    # hl7apy's validator treats ORM^O01's OBR/RQD/RQ1/RXO/ODS/ODT choice group as a sequence (every ORM with an OBR
    # fails it), so the strict parse checks the structure and each segment is validated on its own.
    order = change.orm_o01_order
    obr = order.orm_o01_order_detail.orm_o01_obrrqdrq1rxoodsodt_suppgrp.obr
    for element in (change.msh, change.orm_o01_patient, order.orc, obr, order.orm_o01_order_detail.nte):
        assert element.validate()
    assert order.orc.orc_1.to_er7() == "XO"
    assert order.orc.orc_7.to_er7() == "^^^^^S"
    assert obr.obr_27.to_er7() == "^^^^^S"


def test_priority_update_stays_quiet_below_its_threshold(catalog: Engine, receiver: Hl7Receiver) -> None:
    config = _config(priority_update=True, priority_update_min_urgency=0.95)
    _arm(catalog, receiver, config, AIReport("ct-hemorrhage", "0.3.0", "flagged", [BLEED]))
    assert [r.kind for r in _send_round(catalog, config)] == ["ORU^R01"]
