"""The fast path's own encoder and reader against pynetdicom's (the rest of it is exercised by every test that
talks to the node over DICOM)."""

from __future__ import annotations

import socket
import threading

import pytest
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE

from dicomnode.dicom.fastpath import read_exactly, store_response_command


@pytest.mark.parametrize(
    ("status", "comment", "sop_instance"),
    [
        (0x0000, None, "1.2.3.4"),
        (0x0000, None, "1.2.3.45"),
        (0xA700, "instance exceeds the limit of 4096 bytes", "1.2.3.4"),
        (0xC000, "odd", "1.2.826.0.1.3680043.8.498.1"),
        (0xC211, None, None),  # no UID to echo
    ],
)
def test_store_response_matches_pynetdicom(status: int, comment: str | None, sop_instance: str | None) -> None:
    rsp = C_STORE()
    rsp.MessageIDBeingRespondedTo = 7
    rsp.AffectedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    if sop_instance:
        rsp.AffectedSOPInstanceUID = sop_instance
    rsp.Status = status
    if comment:
        rsp.ErrorComment = comment
    message = C_STORE_RSP()
    message.primitive_to_message(rsp)
    [pdata] = list(message.encode_msg(3, 16384))
    [(context_id, pdv)] = pdata.presentation_data_value_list
    assert (context_id, pdv) == (3, b"\x03" + store_response_command(rsp))


def test_read_exactly_gathers_a_pdu_across_many_segments() -> None:
    left, right = socket.socketpair()
    payload = bytes(range(256)) * 8192  # 2 MiB, sent in pieces
    sender = threading.Thread(
        target=lambda: [right.sendall(payload[i : i + 1000]) for i in range(0, len(payload), 1000)]
    )
    sender.start()
    assert read_exactly(left, len(payload)) == payload
    sender.join()
    right.close()
    assert read_exactly(left, 10) == b""  # the peer closed: what there is (nothing), as pynetdicom's recv returns
    left.close()
