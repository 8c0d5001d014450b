"""[dicom]: the listener's AE titles, port, peers, limits, timeouts and TLS."""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum
from pathlib import Path

from pydantic import Field, model_validator

from dicomnode.config.base import AETitle, Networks, Section, require_files


class DuplicatePolicy(StrEnum):
    KEEP_FIRST = "keep_first"
    OVERWRITE = "overwrite"


class Peer(Section):
    """A sender allowed to associate: its calling AE title and where it may connect from."""

    ae_title: AETitle
    hosts: Networks = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"],
        description="IP addresses or CIDR networks the peer may connect from.",
    )
    complete_on_release: bool = Field(
        False,
        description="The peer sends a study in one association: complete the study when that association is "
        "released (after assembly.release_grace_seconds), not after the quiet period. A late instance reopens it.",
    )

    port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="The peer's own DICOM port: set it to let the peer be a C-MOVE destination (a workstation "
        "that pulls studies from the node).",
    )
    host: str | None = Field(
        None, description="Where C-MOVE sends to; default: the single address in hosts (e.g. 10.0.0.5/32)."
    )

    @model_validator(mode="after")
    def _move_address(self) -> Peer:
        if self.port is not None and self.move_address() is None:
            raise ValueError(f"{self.ae_title}: a port needs a host, or hosts with one single address, to send to")
        return self

    def move_address(self) -> tuple[str, int] | None:
        """(host, port) that C-MOVE sends this peer's retrieves to; None when the peer is no move destination."""
        if self.port is None:
            return None
        if self.host:
            return self.host, self.port
        single = [n for n in self.networks() if n.num_addresses == 1]
        return (str(single[0].network_address), self.port) if len(self.hosts) == 1 and single else None

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(h, strict=False) for h in self.hosts]


class TLSConfig(Section):
    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = Field(None, description="CA bundle used to verify client certificates.")
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TLSConfig:
        if not self.enabled:
            return self
        if self.cert_file is None or self.key_file is None:
            raise ValueError("cert_file and key_file are required when TLS is enabled")
        if self.require_client_cert and self.ca_file is None:
            raise ValueError("ca_file is required when require_client_cert is true")
        require_files(self, "cert_file", "key_file", "ca_file")
        return self


class DicomConfig(Section):
    ae_title: AETitle = "DICOMNODE"
    extra_ae_titles: list[AETitle] = Field(
        default_factory=list, description="Further called AE titles this node answers to."
    )
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=0, le=65535)
    peers: list[Peer] = Field(default_factory=list, description="Allowlist of senders; empty accepts everyone.")
    max_associations: int = Field(32, ge=1)
    receivers: int = Field(
        0,
        ge=0,
        description="Processes accepting on the DICOM port (one listening socket; the one with the fewest "
        "connections takes the next), each running its own associations, so that ingest uses more than one core; 0 "
        "is one per CPU core. The connection caps hold for all together.",
    )
    max_instance_bytes: int = Field(4 * 1024**3, ge=1024)
    max_pdu_bytes: int = Field(
        4 * 1024**2,
        ge=0,
        description="Largest P-DATA PDU we advertise and accept; a peer that sends a larger one is aborted. "
        "0 is unlimited (a peer may then make us buffer gigabytes).",
    )
    association_request_timeout_s: float = Field(
        5,
        gt=0,
        description="A connection must deliver its whole A-ASSOCIATE-RQ (and TLS handshake) within this time.",
    )
    max_connections_per_address: int = Field(
        8, ge=1, description="Open connections one IP address may hold, associated or not."
    )
    max_pending_connections: int = Field(
        16, ge=1, description="Connections that have not yet sent an A-ASSOCIATE-RQ, from anyone."
    )
    max_stranger_connections: int = Field(
        4,
        ge=1,
        description="Of those, how many may come from addresses outside every peer's hosts (with a non-empty "
        "allowlist), so that strangers cannot take the slots of allowed senders.",
    )
    acse_timeout_s: float = Field(30, gt=0)
    dimse_timeout_s: float = Field(60, gt=0)
    network_timeout_s: float = Field(120, gt=0)
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST
    tls: TLSConfig = Field(default_factory=TLSConfig)

    def move_destination(self, ae_title: str) -> tuple[str, int] | None:
        """Where a C-MOVE to `ae_title` goes: only to a peer configured with a port."""
        for peer in self.peers:
            if peer.ae_title.strip() == ae_title.strip() and (address := peer.move_address()):
                return address
        return None

    def receiver_count(self) -> int:
        return self.receivers or len(os.sched_getaffinity(0))

    def called_ae_titles(self) -> set[str]:
        return {self.ae_title.strip(), *(t.strip() for t in self.extra_ae_titles)}
