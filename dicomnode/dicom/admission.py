"""Who may open an association: the peer allowlist, our called AE titles, the disk floor."""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from dicomnode.config.dicom import DicomConfig
from dicomnode.dicom import status
from dicomnode.receive.storage import BELOW_FLOOR, Storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """An A-ASSOCIATE-RJ: result, source, diagnostic (PS3.8 9.3.4), why (for the log) and the metric's label."""

    result: int
    source: int
    diagnostic: int
    reason: str
    label: str


class AdmissionPolicy:
    def __init__(self, dicom: DicomConfig, storage: Storage, warn_if_open: bool = True) -> None:
        """`warn_if_open`: say once per node (not once per receiver process) that anyone is accepted."""
        self._called = dicom.called_ae_titles()
        # (calling AE, networks, completes on release), networks parsed once
        self._peers = [(p.ae_title.strip(), p.networks(), p.complete_on_release) for p in dicom.peers]
        self._storage = storage
        if not self._peers and warn_if_open:
            log.warning("peer allowlist is empty: any calling AE from any address is accepted")

    def decide(self, calling_ae: str, called_ae: str, address: str) -> Rejection | None:
        """None to accept, else the rejection to send."""
        if called_ae.strip() not in self._called:
            return Rejection(*status.CALLED_AE_NOT_RECOGNIZED, "called AE title is not ours", "called_ae")
        if self._peers and not self._matching(calling_ae, address):
            return Rejection(*status.CALLING_AE_NOT_RECOGNIZED, "calling AE/address not in allowlist", "calling_ae")
        if self._storage.below_floor():
            return Rejection(*status.TEMPORARY_CONGESTION, BELOW_FLOOR, "disk_floor")
        return None

    def is_peer_address(self, address: str) -> bool:
        """The address belongs to some allowed peer (any address does while the allowlist is empty)."""
        ip = _address(address)
        if not self._peers:
            return True
        return ip is not None and any(ip in net for p in self._peers for net in p[1])

    def completes_on_release(self, calling_ae: str, address: str) -> bool:
        """The peer (AE and address) sends each study in one association: its release completes the study."""
        return any(completes for *_, completes in self._matching(calling_ae, address))

    def _matching(self, calling_ae: str, address: str) -> list[tuple[str, list, bool]]:
        """The allowlist entries for this calling AE title that the address belongs to."""
        ip = _address(address)
        if ip is None:
            return []
        calling = calling_ae.strip()
        return [p for p in self._peers if p[0] == calling and any(ip in net for net in p[1])]


def _address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped else ip
