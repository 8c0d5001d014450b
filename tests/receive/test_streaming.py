"""Instances are received in chunks straight to a temp file: flat memory, early refusal, nothing left behind."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

from pydicom import dcmread

from dicomnode.dicom import status
from tests.support.dicom_files import dataset_bytes, one_instance
from tests.support.helpers import NODE_AE, node_rss_mb, wait_for
from tests.support.raw_dimse import RawPeer

CT = "1.2.840.10008.5.1.4.1.1.2"
CHUNK = 1024**2  # under the node's 4 MiB maximum PDU


def _big_instance(template: Path, pixel_bytes: int) -> tuple[str, bytes, Iterator[bytes]]:
    """(SOP Instance UID, header bytes, chunks): the template's header with a Pixel Data of `pixel_bytes` zeros."""
    whole = dataset_bytes(template)
    at = whole.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data, explicit VR: tag, OW, 0000, length
    header = whole[:at] + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<L", pixel_bytes)

    def chunks() -> Iterator[bytes]:
        yield header
        zeros = bytes(CHUNK)
        for start in range(0, pixel_bytes, CHUNK):
            yield zeros[: min(CHUNK, pixel_bytes - start)]

    return str(dcmread(template).SOPInstanceUID), header, chunks()


def _temp_files(node) -> list[Path]:  # noqa: ANN001
    return list((node.storage / ".tmp").iterdir())


def _stored(node) -> list[Path]:  # noqa: ANN001
    return [p for p in node.storage.rglob("*.dcm") if ".tmp" not in p.parts]


def test_a_large_instance_is_received_in_flat_memory(node, tmp_path: Path) -> None:  # noqa: ANN001
    sop, header, chunks = _big_instance(one_instance(tmp_path, "template.dcm"), 512 * 1024**2)
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,), timeout=120)
    assert peer.associate() == 0x02
    before = node_rss_mb(node)
    rsp = peer.c_store_streamed(CT, sop, chunks)
    assert int(rsp.Status) == status.SUCCESS
    assert node_rss_mb(node) - before < 100  # a 512 MiB instance, received
    peer.release()
    [stored] = _stored(node)
    data = dataset_bytes(stored)
    assert len(data) == len(header) + 512 * 1024**2 and data.startswith(header)  # stored exactly as sent
    assert _temp_files(node) == []


def test_an_instance_over_the_limit_is_refused_as_soon_as_it_passes_it(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_instance_bytes": 8 * 1024**2})
    sop, _, chunks = _big_instance(one_instance(tmp_path, "template.dcm"), 64 * 1024**2)
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,), timeout=60)
    assert peer.associate() == 0x02
    peer.start_c_store(CT, sop)
    for _ in range(32):  # 32 MiB sent: socket buffers hold a few, so the node has read past its 8 MiB limit
        peer.send_data(next(chunks), last=False)
    wait_for(lambda: _temp_files(node) == [], timeout=30)  # its temp file is gone before the instance ends
    for chunk in chunks:
        peer.send_data(chunk, last=False)
    peer.send_data(b"", last=True)
    rsp = peer.read_response()
    assert int(rsp.Status) == status.OUT_OF_RESOURCES
    assert "exceeds the limit of 8388608 bytes" in str(rsp.ErrorComment)
    assert _stored(node) == [] and _temp_files(node) == []
    good = one_instance(tmp_path, "good.dcm")
    assert int(peer.c_store(CT, str(dcmread(good).SOPInstanceUID), dataset_bytes(good)).Status) == status.SUCCESS
    peer.release()


def test_a_connection_cut_mid_instance_leaves_no_temp_file(node, tmp_path: Path) -> None:  # noqa: ANN001
    sop, _, chunks = _big_instance(one_instance(tmp_path, "template.dcm"), 64 * 1024**2)
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,))
    assert peer.associate() == 0x02
    peer.start_c_store(CT, sop)
    for _ in range(8):
        peer.send_data(next(chunks), last=False)
    wait_for(lambda: _temp_files(node) != [], timeout=30)  # being received
    peer.close()
    wait_for(lambda: _temp_files(node) == [], timeout=30)
    assert _stored(node) == [] and node.alive()
    good = one_instance(tmp_path, "good.dcm")
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,))
    assert peer.associate() == 0x02
    assert int(peer.c_store(CT, str(dcmread(good).SOPInstanceUID), dataset_bytes(good)).Status) == status.SUCCESS
    peer.release()
