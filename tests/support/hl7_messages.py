"""HL7 v2 test messages, as a RIS writes them (v2.3 ORM^O01 with the priority in ORC-7 and OBR-27)."""

from __future__ import annotations

import socket

from dicomnode.hl7.mllp import FrameReader, frame

PATIENT_NAME = "ZZHL7NAME^QQSENTINEL"  # must never reach a log
PATIENT_ID = "HL7PIDSENTINEL"


def orm(accession: str, control: str = "NW", priority: str = "S", control_id: str = "MSG0001", **extra: str) -> str:
    obr18 = extra.get("obr18", accession)
    segments = [
        f"MSH|^~\\&|RIS|HOSPITAL|DICOMNODE|RAD|20261202093000||{extra.get('type', 'ORM^O01')}|{control_id}|P|2.3",
        f"PID|1||{PATIENT_ID}^^^HOSP^MR||{PATIENT_NAME}||19500101|F",
        f"ORC|{control}|PLC{accession}|FIL{accession}||SC||^^^^^{priority}||20261202093000|||1234^WELBY^MARCUS",
        f"OBR|1|PLC{accession}|FIL{accession}|CTHEAD^CT head without contrast^L|||20261202093000||||||||"
        f"|1234^WELBY^MARCUS||{obr18}|||||||||^^^^^{priority}",
    ]
    return "\r".join(segments)


def exchange(port: int, message: str | bytes, timeout: float = 10) -> str:
    """Send one framed message and return the ACK text."""
    data = message.encode() if isinstance(message, str) else message
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(frame(data))
        answer = FrameReader(sock, 1024**2, timeout, timeout).read()
    assert answer is not None, "no ACK"
    return answer.decode()


def ack_code(ack: str) -> str:
    msa = next(s for s in ack.split("\r") if s.startswith("MSA|"))
    return msa.split("|")[1]
