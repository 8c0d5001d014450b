"""[hl7]: the HL7 v2 listener (orders from the RIS) and the HL7 outbox (results and priority back to the RIS)."""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, field_validator

from dicomnode.config.base import Networks
from dicomnode.config.dicom import TLSConfig
from dicomnode.config.export import OutboxPolicy

# Where the accession number of an order may be, tried in order: IPC-1 (OMI^O23, IHE RAD), OBR-18 (Placer
# Field 1, IHE SWF ORM), ORC-3 / OBR-3 (the filler order number, what many RIS use).
DEFAULT_ACCESSION_FIELDS = ["IPC-1", "OBR-18", "ORC-3", "OBR-3"]
_FIELD_NAME = r"^(IPC|OBR|ORC)-\d{1,2}$"


class Hl7Config(OutboxPolicy):
    enabled: bool = Field(
        False,
        description="Listen for HL7 v2 orders (MLLP). Results go out to mllp:// "
        "destinations whether or not this is on.",
    )
    host: str = "0.0.0.0"
    port: int = Field(2575, ge=0, le=65535, description="MLLP port (2575 is HL7's registered port).")
    peers: Networks = Field(
        default_factory=list,
        description="IP addresses or CIDR networks allowed to send orders; empty accepts everyone.",
    )
    tls: TLSConfig = Field(default_factory=TLSConfig)
    max_message_bytes: int = Field(
        1024**2, ge=1024, description="A longer message is refused (AR) and its connection closed."
    )
    message_timeout_s: float = Field(
        30, gt=0, description="A message must arrive whole within this time of its first byte (a slow sender is cut)."
    )
    idle_timeout_s: float = Field(300, gt=0, description="A connection with no message for this long is closed.")
    max_connections: int = Field(16, ge=1, description="Open HL7 connections, from everyone together.")
    accession_fields: list[str] = Field(
        default_factory=lambda: list(DEFAULT_ACCESSION_FIELDS),
        description="Where an order's accession number is, tried in order (IPC-1, OBR-18, ORC-3, OBR-3, ...).",
    )
    sending_application: str = Field("DICOMNODE", max_length=180, description="MSH-3 of the messages we send.")
    sending_facility: str = Field("", max_length=180, description="MSH-4 of the messages we send.")
    priority_update: bool = Field(
        False,
        description="Also send an ORM^O01 order change that raises the order to STAT when a finding's "
        "urgency reaches priority_update_min_urgency.",
    )
    priority_update_min_urgency: float = Field(0.8, ge=0, le=1)
    ack_timeout_s: float = Field(30, gt=0, description="How long a receiver may take to answer a message we send.")

    @field_validator("accession_fields")
    @classmethod
    def _fields_named(cls, fields: list[str]) -> list[str]:
        for name in fields:
            if not re.match(_FIELD_NAME, name):
                raise ValueError(f"{name!r}: name a field as SEGMENT-N, of IPC, OBR or ORC (e.g. OBR-18)")
        return fields

    def allows(self, address: str) -> bool:
        if not self.peers:
            return True
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(p, strict=False) for p in self.peers)
