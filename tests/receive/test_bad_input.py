"""Bad input gets a failure status, nothing is written, and the association stays usable."""

from __future__ import annotations

import os
import resource
import signal
import socket
import struct
import zlib
from pathlib import Path

import httpx
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian as DEFLATED
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import build_context

from dicomnode.catalog.db import open_catalog
from dicomnode.dicom import status
from tests.support.dicom_files import DISTINCT_PHI, dataset_bytes, one_instance, with_raw_dataset
from tests.support.helpers import NODE_AE, node_rss_mb, run_dcmtk, storescu, wait_for
from tests.support.raw_dimse import RawPeer

CT = "1.2.840.10008.5.1.4.1.1.2"
MR = "1.2.840.10008.5.1.4.1.1.4"
CONTEXTS = [build_context(CT, ExplicitVRLittleEndian), build_context(MR, ExplicitVRLittleEndian)]


def store(assoc, path: Path) -> int:  # noqa: ANN001
    rsp = assoc.send_c_store(path)
    assert "Status" in rsp, "no C-STORE response"
    return int(rsp.Status)


def stored_files(node) -> list[Path]:  # noqa: ANN001
    return [p for p in node.storage.rglob("*") if p.is_file()]


def assert_then_good_instance_succeeds(assoc, tmp: Path, node) -> None:  # noqa: ANN001
    good = one_instance(tmp, "good.dcm")
    assert store(assoc, good) == status.SUCCESS
    assert [p.name for p in stored_files(node)] == [dcmread(good).SOPInstanceUID + ".dcm"]


def test_invalid_uids_are_refused_and_nothing_is_written(node, tmp_path: Path) -> None:  # noqa: ANN001
    bad = [
        one_instance(tmp_path, "lead0.dcm", StudyInstanceUID="1.2.03.4"),
        one_instance(tmp_path, "trav.dcm", SeriesInstanceUID="../../../../tmp/evil"),
        one_instance(tmp_path, "long.dcm", StudyInstanceUID="1." + "2" * 70),
        one_instance(tmp_path, "none.dcm", StudyInstanceUID=""),
    ]
    assoc = node.associate(CONTEXTS)
    assert assoc.is_established
    for path in bad:
        assert store(assoc, path) == status.INVALID_UID, path.name
    assert stored_files(node) == []
    assert not Path("/tmp/evil.dcm").exists()
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()


def test_request_uid_mismatches(node, tmp_path: Path) -> None:  # noqa: ANN001
    # The C-STORE request carries the file meta UIDs; the data set disagrees with them.
    other_instance = one_instance(tmp_path, "inst.dcm", meta_MediaStorageSOPInstanceUID="1.2.3.4.5")
    other_class = one_instance(tmp_path, "class.dcm", meta_MediaStorageSOPClassUID=MR)
    bad_command_uid = one_instance(
        tmp_path, "cmd.dcm", meta_MediaStorageSOPInstanceUID="1.2.3.04", SOPInstanceUID="1.2.3.04"
    )
    assoc = node.associate(CONTEXTS)
    assert store(assoc, other_instance) == status.INSTANCE_UID_MISMATCH
    assert store(assoc, other_class) == status.SOP_CLASS_MISMATCH
    assert store(assoc, bad_command_uid) == status.INVALID_UID
    assert stored_files(node) == []
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()


def _with_vr(dataset: bytes, tag: bytes, vr: bytes) -> bytes:
    at = dataset.index(tag)
    return dataset[: at + 4] + vr + dataset[at + 6 :]


def test_truncated_and_garbage_data_sets(node, tmp_path: Path) -> None:  # noqa: ANN001
    template = one_instance(tmp_path, "template.dcm")
    whole = dataset_bytes(template)
    broken = [
        with_raw_dataset(template, whole[:-5], tmp_path / "cut-in-pixels.dcm"),
        with_raw_dataset(template, whole[: len(whole) // 3], tmp_path / "cut-in-header.dcm"),
        with_raw_dataset(template, os.urandom(4096), tmp_path / "garbage.dcm"),
        with_raw_dataset(template, b"\x08\x00", tmp_path / "two-bytes.dcm"),
        # Rows (0028,0010) with VR "ZZ": two capital letters, but no DICOM VR (pydicom cannot decode it)
        with_raw_dataset(template, _with_vr(whole, b"\x28\x00\x10\x00", b"ZZ"), tmp_path / "vr-zz.dcm"),
    ]
    assoc = node.associate(CONTEXTS)
    for path in broken:
        assert store(assoc, path) == status.CANNOT_UNDERSTAND, path.name
    assert stored_files(node) == []
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()


def test_garbage_on_the_socket_does_not_hurt_the_node(node) -> None:  # noqa: ANN001
    for payload in (os.urandom(2000), b"\x01\x00\xff\xff\xff\xff" + b"x" * 100, b"GET / HTTP/1.0\r\n\r\n"):
        with socket.create_connection(("127.0.0.1", node.port), timeout=5) as s:
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(5)
            try:
                while s.recv(4096):
                    pass
            except (ConnectionResetError, TimeoutError):
                pass
    assert node.alive()
    r = run_dcmtk("echoscu", "-aec", NODE_AE, "127.0.0.1", str(node.port))
    assert r.returncode == 0, r.stderr


def test_instance_over_the_size_limit(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_instance_bytes": 4096})
    big = one_instance(tmp_path, "big.dcm", Rows=64, Columns=64, PixelData=b"\x00\x01" * 64 * 64)  # 8 KiB pixels
    assoc = node.associate(CONTEXTS)
    assert store(assoc, big) == status.OUT_OF_RESOURCES
    assert stored_files(node) == []
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()


def _limit_file_size() -> None:
    # A real write failure: the kernel refuses to grow any file past 2 MiB (EFBIG).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2 * 1024**2, 2 * 1024**2))


def test_write_error_returns_out_of_resources_and_leaves_nothing(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(preexec=_limit_file_size)
    # 2.4 MB, over the limit
    big = one_instance(tmp_path, "big.dcm", Rows=1100, Columns=1100, PixelData=b"\x00\x01" * 1100 * 1100)
    assoc = node.associate(CONTEXTS)
    assert store(assoc, big) == status.OUT_OF_RESOURCES
    assert list((node.storage / ".tmp").iterdir()) == []
    assert stored_files(node) == []
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()
    assert node.alive()
    assert "storage write failed" in node.log()


def test_free_space_floor_refuses_new_associations(start_node) -> None:  # noqa: ANN001
    node = start_node(storage={"min_free_bytes": 10**18})
    assoc = node.associate(CONTEXTS)
    assert assoc.is_rejected
    rj = assoc.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x01)  # transient congestion
    assert node.alive()


def test_free_space_floor_refuses_instances(tmp_path: Path) -> None:
    # The per-instance check, for space that runs out during an association.
    from dicomnode.config.dicom import DuplicatePolicy
    from dicomnode.receive.ingest import Ingest, StoreRequest
    from dicomnode.receive.storage import Storage

    path = one_instance(tmp_path, "a.dcm")
    ingest = Ingest(Storage(tmp_path / "s", 10**18), open_catalog("sqlite://"), DuplicatePolicy.KEEP_FIRST, 10**9)
    ds = dcmread(path)
    outcome = ingest.store(
        StoreRequest(
            CT, ds.SOPInstanceUID, ds.file_meta.TransferSyntaxUID, "A", NODE_AE, "127.0.0.1", dataset_bytes(path)
        )
    )
    assert outcome.status == status.OUT_OF_RESOURCES
    assert "free-space floor" in (outcome.comment or "")


def test_maximum_concurrent_associations(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_associations": 1})
    first = node.associate(CONTEXTS)
    assert first.is_established
    second = node.associate(CONTEXTS)
    assert second.is_rejected
    rj = second.acceptor.primitive
    assert (rj.result, rj.result_source, rj.diagnostic) == (0x02, 0x03, 0x02)  # local limit exceeded
    first.release()
    # the refusal is visible: a warning and a rejected count, never logged or counted as accepted
    wait_for(lambda: "all associations in use (dicom.max_associations is 1)" in node.log(), timeout=10)

    def rejected_counted() -> str | None:
        text = httpx.get(f"{node.http_url}/metrics", timeout=10).text
        return (
            text if 'dicomnode_associations_total{outcome="rejected",reason="association_limit"} 1.0' in text else None
        )

    metrics = wait_for(rejected_counted, timeout=10)
    assert 'dicomnode_associations_total{outcome="accepted",reason=""} 1.0' in metrics
    assert node.log().count("association from") == 1


def test_no_patient_data_in_logs(node, tmp_path: Path) -> None:  # noqa: ANN001
    phi = {
        "PatientName": DISTINCT_PHI["name"],
        "PatientID": DISTINCT_PHI["patient_id"],
        "PatientBirthDate": DISTINCT_PHI["birth_date"],
        "AccessionNumber": DISTINCT_PHI["accession"],
    }
    good = one_instance(tmp_path, "good.dcm", **phi)
    bad_uid = one_instance(tmp_path, "bad.dcm", StudyInstanceUID=DISTINCT_PHI["patient_id"], **phi)
    cut = with_raw_dataset(good, dataset_bytes(good)[:-10], tmp_path / "cut.dcm")
    assoc = node.associate(CONTEXTS)
    assert [store(assoc, p) for p in (good, bad_uid, cut, good)] == [
        0,
        status.INVALID_UID,
        status.CANNOT_UNDERSTAND,
        0,
    ]
    assoc.release()
    storescu(node, [good])
    log = node.log()
    assert "stored sop=" in log and "refused C-STORE" in log  # DEBUG logging was on
    for value in DISTINCT_PHI.values():
        assert value not in log
        assert value.split("^")[0] not in log


def test_unknown_transfer_syntax_is_refused_clearly(node, tmp_path: Path) -> None:  # noqa: ANN001
    # Accepted at negotiation (any storage context is), refused per instance: we cannot read it.
    odd = "1.2.3.4.5.6"
    path = one_instance(tmp_path, "odd.dcm", meta_TransferSyntaxUID=odd)
    assoc = node.associate([build_context(CT, odd), *CONTEXTS])
    assert assoc.is_established
    rsp = assoc.send_c_store(path)
    assert int(rsp.Status) == status.CANNOT_UNDERSTAND
    assert "unknown transfer syntax" in str(rsp.ErrorComment)
    assert stored_files(node) == []
    assoc.release()
    # pynetdicom's SCU cannot pick a context while one with an unknown syntax is
    # accepted, so the node's health is shown on a fresh association.
    assoc = node.associate(CONTEXTS)
    assert_then_good_instance_succeeds(assoc, tmp_path, node)
    assoc.release()


def test_every_c_store_is_answered_even_those_pynetdicom_drops(node, tmp_path: Path) -> None:  # noqa: ANN001
    # A raw DIMSE sender: pynetdicom and dcmtk refuse to send these requests at all.
    good = one_instance(tmp_path, "good.dcm")
    data, uid = dataset_bytes(good), dcmread(good).SOPInstanceUID
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,))
    assert peer.associate() == 0x02
    cases = [
        ("", data, status.INVALID_UID, "Affected SOP Instance UID is empty"),
        ("   ", data, status.INVALID_UID, "Affected SOP Instance UID is empty"),
        ("1." + "2" * 70, data, status.INVALID_UID, "not a valid DICOM UID"),
        (uid, None, status.CANNOT_UNDERSTAND, "empty data set"),  # CommandDataSetType: no data set
        (uid, b"", status.CANNOT_UNDERSTAND, "empty data set"),
    ]
    for sop, payload, expected, comment in cases:
        rsp = peer.c_store(CT, sop, payload)  # raises on an abort or a timeout: the request was not answered
        assert (int(rsp.Status), comment in str(rsp.get("ErrorComment", ""))) == (expected, True), repr(sop)
    assert stored_files(node) == []
    assert int(peer.c_store(CT, uid, data).Status) == status.SUCCESS  # the association stayed usable
    peer.release()
    assert node.log().count("refused C-STORE status=0xC001 sop=<invalid>") == 3


def _deflate_bomb(template: Path, inflated_bytes: int) -> bytes:
    """A deflated data set whose Pixel Data inflates to `inflated_bytes` of zeros (a few hundred KB on the wire)."""
    whole = dataset_bytes(template)
    at = whole.index(b"\xe0\x7f\x10\x00")  # (7FE0,0010) Pixel Data, explicit VR: tag, OW, 0000, length
    header = whole[:at] + b"\xe0\x7f\x10\x00OW\x00\x00" + struct.pack("<L", inflated_bytes)
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = [deflater.compress(header)]
    zeros = b"\x00" * 16 * 1024**2
    for _ in range(inflated_bytes // len(zeros)):
        out.append(deflater.compress(zeros))
    out.append(deflater.flush())
    return b"".join(out)


def test_a_deflate_bomb_is_refused_in_bounded_memory(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_instance_bytes": 16 * 1024**2})
    template = one_instance(tmp_path, "template.dcm")
    bomb = _deflate_bomb(template, 1024**3)
    assert len(bomb) < 2 * 1024**2
    peer = RawPeer("127.0.0.1", node.port, NODE_AE, abstract_syntaxes=(CT,), transfer_syntax=DEFLATED)
    assert peer.associate() == 0x02
    before = node_rss_mb(node)
    rsp = peer.c_store(CT, dcmread(template).SOPInstanceUID, bomb)
    assert int(rsp.Status) == status.OUT_OF_RESOURCES
    assert "inflates to over 16777216 bytes" in str(rsp.ErrorComment)
    assert node_rss_mb(node) - before < 100
    assert stored_files(node) == []
    peer.release()
