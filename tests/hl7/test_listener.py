"""The HL7 listener in process, against a real catalog: every order recorded and answered AA, every bad message
answered AE/AR or its connection closed, and the listener still answering the next sender."""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Order, Study, WorkItem, WorkItemEvent
from dicomnode.config.hl7 import Hl7Config
from dicomnode.config.worklist import WorklistConfig
from dicomnode.hl7.listener import Hl7Listener
from dicomnode.hl7.mllp import frame
from dicomnode.ops.metrics import NodeMetrics
from tests.support.hl7_messages import PATIENT_ID, PATIENT_NAME, ack_code, exchange, orm
from tests.support.worklist_data import add_study


@pytest.fixture
def catalog(tmp_path: Path) -> Engine:
    return open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")


@pytest.fixture
def listener(catalog: Engine) -> Iterator[Hl7Listener]:
    config = Hl7Config(
        enabled=True, host="127.0.0.1", port=0, max_message_bytes=64 * 1024, message_timeout_s=1.0, idle_timeout_s=5
    )
    hl7 = Hl7Listener(config, catalog, WorklistConfig(), NodeMetrics())
    hl7.start()
    yield hl7
    hl7.stop()


def _port(listener: Hl7Listener) -> int:
    return listener.address[1]


def _still_answers(listener: Hl7Listener, accession: str = "ALIVE1") -> None:
    assert ack_code(exchange(_port(listener), orm(accession, control_id="ALIVE"))) == "AA"


def _closed_by_peer(sock: socket.socket, timeout: float = 10) -> bool:
    """True when the listener closed the connection (EOF or reset) within `timeout`."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    return True


def test_an_order_is_recorded_and_answered_aa(listener: Hl7Listener, catalog: Engine) -> None:
    ack = exchange(_port(listener), orm("ACC100", priority="S", control_id="CTRL42"))
    assert ack_code(ack) == "AA"
    assert "|CTRL42" in next(s for s in ack.split("\r") if s.startswith("MSA|"))
    with catalog.connect() as conn:
        order = conn.execute(select(Order.__table__)).one()
    assert (order.accession_number, order.priority, order.hl7_priority) == ("ACC100", "STAT", "S")
    assert (order.placer_order_number, order.filler_order_number) == ("PLCACC100", "FILACC100")
    assert (order.procedure_code, order.procedure_text) == ("CTHEAD", "CT head without contrast")
    assert (order.patient_id, order.patient_name, order.status) == (PATIENT_ID, PATIENT_NAME, "scheduled")


def test_an_order_after_its_study_changes_the_item_and_its_history(listener: Hl7Listener, catalog: Engine) -> None:
    with catalog.begin() as conn:
        study = add_study(conn, None, minutes_ago=5)  # no priority in its headers: ROUTINE
        accession = conn.execute(select(Study.accession_number).where(Study.id == study)).scalar_one()
    items, events = WorkItem.__table__, WorkItemEvent.__table__
    assert ack_code(exchange(_port(listener), orm(accession, priority="S"))) == "AA"
    with catalog.connect() as conn:
        item = conn.execute(select(items).where(items.c.study_fk == study)).one()
        last = conn.execute(select(events).where(events.c.item_fk == item.id).order_by(events.c.id.desc())).first()
    assert item.priority == "STAT"
    assert (last.event, last.actor) == ("order", "RIS")
    assert "ROUTINE -> STAT" in last.reason

    assert ack_code(exchange(_port(listener), orm(accession, control="CA", control_id="MSG0002"))) == "AA"
    with catalog.connect() as conn:
        item = conn.execute(select(items).where(items.c.study_fk == study)).one()
        last = conn.execute(select(events).where(events.c.item_fk == item.id).order_by(events.c.id.desc())).first()
        order = conn.execute(select(Order.__table__)).one()
    assert item.state == "CANCELED"
    assert (last.event, last.actor) == ("canceled", "RIS")
    assert order.status == "cancelled"


@pytest.mark.parametrize(
    ("payload", "code", "why"),
    [
        (b"hello, this is not HL7", "AR", "not an HL7 v2 message"),
        (orm("ACC1", type="ADT^A01").encode(), "AR", "ADT\\S\\A01 is not processed"),
        (orm("ACC1", control_id="").encode(), "AR", "MSH-10"),
        (orm("", obr18="").replace("|FILACC1|", "||").replace("FIL|", "|").encode(), "AE", "no accession number"),
        (orm("ACC1", control="ZZ").encode(), "AE", "order control ZZ"),
        (orm("A" * 17).encode(), "AE", "longer than DICOM's 16"),
    ],
)
def test_a_bad_message_gets_its_ack_code_and_reason(listener: Hl7Listener, payload: bytes, code: str, why: str) -> None:
    ack = exchange(_port(listener), payload)
    assert ack_code(ack) == code
    assert why in ack
    assert any(s.startswith("ERR|") for s in ack.split("\r"))
    _still_answers(listener)


def test_wrong_framing_bytes_close_the_connection(listener: Hl7Listener) -> None:
    with socket.create_connection(("127.0.0.1", _port(listener))) as sock:
        sock.sendall(orm("ACC1").encode() + b"\x1c\r")  # no <VT>
        assert _closed_by_peer(sock)
    _still_answers(listener)


def test_a_truncated_frame_is_not_recorded(listener: Hl7Listener, catalog: Engine) -> None:
    with socket.create_connection(("127.0.0.1", _port(listener))) as sock:
        sock.sendall(b"\x0b" + orm("TRUNC1").encode()[:60])  # the sender dies mid-message
    _still_answers(listener)
    with catalog.connect() as conn:
        assert conn.execute(select(Order.__table__.c.accession_number)).scalars().all() == ["ALIVE1"]


def test_a_50_mb_message_is_cut_off_unread(listener: Hl7Listener) -> None:
    sent = 0
    with socket.create_connection(("127.0.0.1", _port(listener))) as sock:
        sock.settimeout(10)
        chunk = b"OBX|1|ST|X||" + b"x" * 1024 * 1024
        try:
            sock.sendall(b"\x0b" + orm("BIG1").encode() + b"\r")
            while sent < 50 * 1024 * 1024:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 50 * 1024 * 1024, "the listener read a 50 MB message to its end"
    _still_answers(listener)


def test_a_slow_sender_is_cut_at_the_message_timeout(listener: Hl7Listener) -> None:
    message = b"\x0b" + orm("SLOW1").encode()
    with socket.create_connection(("127.0.0.1", _port(listener))) as sock:
        started = time.monotonic()
        try:
            for byte in message:  # one byte per 0.2 s: the whole message would take ~40 s
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert _closed_by_peer(sock)
        assert time.monotonic() - started < 30
    _still_answers(listener)


def test_two_messages_on_one_connection_are_both_answered(listener: Hl7Listener) -> None:
    with socket.create_connection(("127.0.0.1", _port(listener)), timeout=10) as sock:
        sock.sendall(frame(orm("TWO1", control_id="M1").encode()) + frame(orm("TWO2", control_id="M2").encode()))
        data = b""
        while data.count(b"\x1c\r") < 2:
            data += sock.recv(65536)
    assert b"MSA|AA|M1" in data and b"MSA|AA|M2" in data


def test_a_peer_outside_the_allowlist_is_closed_unanswered(catalog: Engine) -> None:
    config = Hl7Config(enabled=True, host="127.0.0.1", port=0, peers=["10.99.0.0/16"])
    hl7 = Hl7Listener(config, catalog, WorklistConfig(), NodeMetrics())
    hl7.start()
    try:
        with socket.create_connection(("127.0.0.1", hl7.address[1]), timeout=10) as sock:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(frame(orm("NOPE1").encode()))
            assert _closed_by_peer(sock)
    finally:
        hl7.stop()
    with catalog.connect() as conn:
        assert conn.execute(select(Order.__table__.c.id)).first() is None


def test_no_patient_data_in_the_logs(listener: Hl7Listener, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    exchange(_port(listener), orm("LOG1"))
    exchange(_port(listener), orm("LOG2", type="ADT^A01"))
    exchange(_port(listener), orm("A" * 17))
    text = caplog.text
    assert "control_id=MSG0001" in text
    for secret in (PATIENT_NAME, PATIENT_ID, "LOG1", "LOG2", "WELBY"):
        assert secret not in text
