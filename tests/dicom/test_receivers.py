"""Several receiver processes on one DICOM port (dicom.receivers): they share the port, store into one storage and
catalog, count every receiver's connections against the admission caps, report to the node's metrics, and a dead
one is restarted. Real node, dcmtk storescu and pynetdicom as the senders.

Every receiver accepts on receiver 0's listening socket, in turn: the one with the fewest live connections takes the
next (ties race), so tests that do not test the turns assume nothing about which receiver takes a connection."""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest
from pynetdicom import AE, build_context
from sqlalchemy import func, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Instance
from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, storescu, wait_for
from tests.support.probes import closed_by_node, metric, rejected

VERIFICATION = [build_context("1.2.840.10008.1.1")]
RECEIVERS = 3


def _associate(node):  # noqa: ANN001, ANN202
    ae = AE(ae_title="SCU")
    ae.requested_contexts = VERIFICATION
    ae.acse_timeout = 10
    return ae.associate("127.0.0.1", node.port, ae_title=NODE_AE)


def _receivers_in_log(node, pattern: str) -> set[int]:  # noqa: ANN001
    return {int(m) for m in re.findall(pattern, node.log())}


def _accepted_by(node) -> set[int]:  # noqa: ANN001
    return _receivers_in_log(node, r"association from \S+ to \S+, receiver (\d+)")


def _instances(node) -> int:  # noqa: ANN001
    with open_catalog(node.catalog_url).connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Instance)))


def _pids(node) -> dict[int, int]:  # noqa: ANN001
    """The latest pid of each receiver process, from its start-up line."""
    return {int(i): int(p) for i, p in re.findall(r"receiver (\d+) listening pid=(\d+)", node.log())}


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def test_receivers_share_the_port_and_store_into_one_catalog(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(dicom={"receivers": RECEIVERS})
    assert f"receivers={RECEIVERS}" in node.log()
    assert set(_pids(node)) == {1, 2}, "receivers 1 and 2 run in processes of their own"
    studies = [series(tmp_path / f"s{i}", 5) for i in range(4)]
    results: list[int] = []
    senders = [
        threading.Thread(target=lambda files=files: results.append(storescu(node, files).returncode))
        for _, files in studies
    ]
    for t in senders:
        t.start()
    for t in senders:
        t.join()
    assert results == [0, 0, 0, 0]
    for _ in range(200):  # more associations until two receivers are seen to have taken some
        if len(_accepted_by(node)) >= 2:
            break
        assoc = _associate(node)
        assert assoc.is_established
        assoc.release()
    assert len(_accepted_by(node)) >= 2

    assert _instances(node) == 20
    for spec, _ in studies:
        assert len(list((node.storage / spec.study_uid).rglob("*.dcm"))) == 5
    # what the receivers counted reaches the node's /metrics
    wait_for(lambda: metric(node, "dicomnode_instances_received_total") == 20)
    wait_for(lambda: metric(node, "dicomnode_associations_active") == 0)


def test_the_receiver_with_the_fewest_connections_takes_the_next(start_node) -> None:  # noqa: ANN001
    # With SO_REUSEPORT (before) the kernel chose by a hash of the addresses: four scanners at once landed 4/0 or
    # 3/1 on two receivers in most runs, one process doing the work of three.
    node = start_node(dicom={"receivers": 2})
    held = []
    for _ in range(4):  # one after another, each held open: turns 0/0 (either), 1/0, 1/1 (either), 2/1
        held.append(_associate(node))
        assert held[-1].is_established
    lines = wait_for(
        lambda: len(found := re.findall(r"association from \S+ to \S+, receiver (\d+)", node.log())) == 4 and found
    )
    assert Counter(lines) == {"0": 2, "1": 2}
    for assoc in held:
        assoc.release()


def test_max_associations_counts_every_receivers_associations(start_node) -> None:  # noqa: ANN001
    limits = {"max_associations": 2, "max_connections_per_address": 64, "max_pending_connections": 64}
    node = start_node(dicom={"receivers": RECEIVERS, **limits})
    held = [_associate(node), _associate(node)]
    assert all(a.is_established for a in held)
    refusing = set()
    for _ in range(40):  # until refusals from two receivers are seen: each refused for the node's total
        assoc = _associate(node)
        assert assoc.is_rejected, "a third association while two are held anywhere"
        refusing = _receivers_in_log(node, r"by receiver (\d+): all associations in use")
        if len(refusing) >= 2:
            break
    assert len(refusing) >= 2

    held[0].release()  # its place is free for every receiver as soon as its thread ends
    wait_for(lambda: (a := _associate(node)).is_established and (a.release() or True), timeout=30)
    held[1].release()


def test_connections_per_address_are_capped_across_receivers(start_node) -> None:  # noqa: ANN001
    node = start_node(
        dicom={"receivers": RECEIVERS, "max_connections_per_address": 2, "association_request_timeout_s": 120}
    )
    idle = [socket.create_connection(("127.0.0.1", node.port), timeout=10) for _ in range(2)]
    # connected is not yet accepted: wait until receivers have taken both (each may be any of them)
    wait_for(lambda: metric(node, "dicomnode_associations_active") == 2)
    for _ in range(9):  # wherever the kernel puts it, a third connection from the address is closed at once
        extra = socket.create_connection(("127.0.0.1", node.port), timeout=10)
        assert closed_by_node(extra, within=10)
        extra.close()
    wait_for(lambda: metric(node, rejected("per_address_limit")) == 9)
    for sock in idle:
        sock.close()
    wait_for(lambda: (a := _associate(node)).is_established and (a.release() or True), timeout=30)


def test_a_dead_receiver_is_restarted_and_sigterm_stops_every_receiver(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(dicom={"receivers": 2})
    first = _pids(node)[1]
    os.kill(first, signal.SIGKILL)  # a crash we can cause for real
    wait_for(lambda: _pids(node).get(1, first) != first, timeout=60)
    assert "receiver 1 exited" in node.log()
    second = _pids(node)[1]
    health = wait_for(lambda: (r := httpx.get(f"{node.http_url}/healthz", timeout=10)).status_code == 200 and r)
    assert health.json()["checks"]["dicom_listener"]["ok"]
    _, files = series(tmp_path / "s", 3)
    assert storescu(node, files).returncode == 0
    assert _instances(node) == 3

    assert node.stop(signal.SIGTERM) == 0
    wait_for(lambda: _gone(second), timeout=30)


@pytest.mark.parametrize("receivers", [0])
def test_receivers_default_to_one_per_core(start_node, receivers: int) -> None:  # noqa: ANN001
    node = start_node(dicom={"receivers": receivers})
    assert f"receivers={len(os.sched_getaffinity(0))}" in node.log()
