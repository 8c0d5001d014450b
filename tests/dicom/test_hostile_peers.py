"""Strangers on the network cannot take the node's connection slots or memory (admission before resources).

Each test reproduces a measured attack from outside, on loopback: idle and trickling sockets,
floods from one address, a PDU header declaring gigabytes. Sources are told apart by binding
client sockets to different loopback addresses (127.0.0.0/8 all reach the node on Linux).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import SimpleNamespace

from pynetdicom import AE, build_context

from dicomnode.dicom.gate import ASSOCIATION_REQUEST_MAX_BYTES, BoundedSocket
from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, node_rss_mb, storescu, wait_for
from tests.support.probes import closed_by_node, metric, rejected
from tests.support.raw_dimse import RawPeer

VERIFICATION = [build_context("1.2.840.10008.1.1")]
ALLOWED = "127.0.0.2"
STRANGER = "127.0.0.3"
PEERS = {"peers": [{"ae_title": "GOOD", "hosts": [f"{ALLOWED}/32"]}]}


def raw_socket(node, source: str = STRANGER) -> socket.socket:  # noqa: ANN001
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10, source_address=(source, 0))
    return sock


@contextmanager
def trickling(socks: list[socket.socket], interval: float = 0.5) -> Iterator[None]:
    """Keep every socket sending the start of an A-ASSOCIATE-RQ one byte at a time."""
    stop = threading.Event()
    header = b"\x01\x00" + struct.pack(">L", 200) + b"\x00" * 200

    def run() -> None:
        i = 0
        while not stop.wait(interval) and i < len(header):
            for s in socks:
                with suppress(OSError):
                    s.send(header[i : i + 1])
            i += 1

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        for s in socks:
            s.close()


def associate_from(node, source: str, calling_ae: str = "GOOD"):  # noqa: ANN001, ANN201
    ae = AE(ae_title=calling_ae)
    ae.requested_contexts = VERIFICATION
    ae.acse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title=NODE_AE, bind_address=(source, 0))


def test_trickling_strangers_do_not_lock_out_an_allowed_sender(start_node) -> None:  # noqa: ANN001
    # a long request deadline, so that no stranger's slot frees itself during the test
    node = start_node(dicom={**PEERS, "host": "0.0.0.0", "max_associations": 4, "association_request_timeout_s": 120})
    strangers = []
    for _ in range(33):  # as in the measured attack: 33 sockets at 1 byte/s filled every slot
        try:
            strangers.append(raw_socket(node))
        except OSError:
            break
    with trickling(strangers):
        assoc = associate_from(node, ALLOWED)
        assert assoc.is_established, "an allowed sender was locked out by strangers"
        assert int(assoc.send_c_echo().Status) == 0
        assoc.release()
    assert metric(node, rejected("stranger_limit")) == len(strangers) - 4  # max_stranger_connections
    assert "connection from 127.0.0.3 refused" in node.log()


def test_idle_connections_do_not_count_against_max_associations(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_associations": 1})
    idle = [raw_socket(node, "127.0.0.1") for _ in range(3)]
    try:
        assoc = associate_from(node, "127.0.0.1")
        assert assoc.is_established  # not after waiting for the idle sockets' ARTIM timeout
        assoc.release()
    finally:
        for s in idle:
            s.close()


def test_association_request_must_arrive_in_time_whatever_the_trickle(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={"association_request_timeout_s": 1})
    idle = raw_socket(node, "127.0.0.1")
    trickler = raw_socket(node, "127.0.0.1")
    with trickling([trickler], interval=0.2):
        start = time.monotonic()
        assert closed_by_node(trickler, within=15), "a trickled A-ASSOCIATE-RQ kept its connection"
        assert time.monotonic() - start < 10
    assert closed_by_node(idle, within=15)
    wait_for(lambda: "no association request within 1 s" in node.log(), timeout=10)
    assert metric(node, rejected("request_timeout")) >= 2


def test_connections_per_address_are_capped(start_node) -> None:  # noqa: ANN001
    # a long request deadline: the two allowed connections must not be cut by it on a slow machine
    node = start_node(dicom={"max_connections_per_address": 2, "association_request_timeout_s": 120})
    first, second = raw_socket(node, "127.0.0.1"), raw_socket(node, "127.0.0.1")
    third = raw_socket(node, "127.0.0.1")
    try:
        assert closed_by_node(third, within=10)
        assert not closed_by_node(first, within=0.3) and not closed_by_node(second, within=0.3)
        other = associate_from(node, "127.0.0.4")  # another address is not affected
        assert other.is_established
        other.release()
    finally:
        for s in (first, second, third):
            s.close()
    assert metric(node, rejected("per_address_limit")) == 1


def stream_until_closed(sock: socket.socket, header: bytes, limit_bytes: int) -> int:
    """Send the header and then zeros until the node closes the connection; return the bytes it took."""
    chunk = b"\x00" * 65536
    sent = 0
    try:
        sock.sendall(header)
        while sent < limit_bytes:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        return sent
    return sent


def test_a_gigabyte_pdu_header_is_refused_before_it_is_buffered(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={**PEERS, "host": "0.0.0.0"})
    before = node_rss_mb(node)
    sock = raw_socket(node)
    sent = stream_until_closed(sock, b"\x01\x00" + struct.pack(">L", 0xFFFFFFF0), limit_bytes=512 * 1024**2)
    sock.close()
    assert sent < 64 * 1024**2, f"the node kept reading a 4 GB association request ({sent} bytes)"
    assert node_rss_mb(node) - before < 50
    wait_for(lambda: "PDU type 0x01 of 4294967280 bytes over 65536" in node.log(), timeout=10)
    assert associate_from(node, ALLOWED).is_established  # the node is fine


def test_a_pdata_pdu_over_max_pdu_bytes_aborts_the_association(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={"max_pdu_bytes": 65536})
    peer = RawPeer("127.0.0.1", node.port, NODE_AE)
    assert peer.associate() == 0x02
    before = node_rss_mb(node)
    sent = stream_until_closed(peer.sock, b"\x04\x00" + struct.pack(">L", 1024**3), limit_bytes=512 * 1024**2)
    peer.close()
    assert sent < 64 * 1024**2
    assert node_rss_mb(node) - before < 50
    wait_for(lambda: "PDU type 0x04 of 1073741824 bytes over 65536" in node.log(), timeout=10)
    assert metric(node, rejected("pdu_too_large")) == 1
    again = RawPeer("127.0.0.1", node.port, NODE_AE)
    assert again.associate() == 0x02
    assert int(again.c_echo().Status) == 0
    again.release()


def test_a_pdata_pdu_read_before_the_association_thread_marks_it_established_is_allowed() -> None:
    """The DUL thread sends the A-ASSOCIATE-AC and reads the peer's first P-DATA; the association thread sets
    is_established later. Four storescu at once (bench/ingest.py) hit that interleaving: a 128 KiB P-DATA was
    refused as if it came before association. The socket now asks the DUL's state. Stand-in association: the
    thread interleaving cannot be caused on demand (the concurrent senders below exercise the real one)."""
    sock = BoundedSocket.__new__(BoundedSocket)
    state = SimpleNamespace(current_state="Sta6")
    sock._assoc = SimpleNamespace(
        is_established=False,
        dul=SimpleNamespace(state_machine=state),
        acceptor=SimpleNamespace(maximum_length=4 * 1024**2),
    )
    assert sock._limit() == 4 * 1024**2
    state.current_state = "Sta2"  # awaiting the A-ASSOCIATE-RQ
    assert sock._limit() == ASSOCIATION_REQUEST_MAX_BYTES


def test_concurrent_senders_with_large_pdus_are_all_stored(node, tmp_path) -> None:  # noqa: ANN001
    studies = [series(tmp_path / f"s{i}", 4)[1] for i in range(6)]
    results: list[int] = []
    senders = [
        threading.Thread(
            target=lambda f=files: results.append(storescu(node, f, "--max-send-pdu", "131072").returncode)
        )
        for files in studies
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert results == [0] * 6
    assert "PDU type 0x04" not in node.log()
