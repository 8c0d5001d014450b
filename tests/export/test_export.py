"""Results reach PACS: SR and SEG through the durable outbox to a real dcmtk storescp, with retries, a
destination that is down then back (each result exactly once), refusals told apart, and a restart mid-way."""

from __future__ import annotations

import json
import socket
import ssl
import time
from pathlib import Path

import pydicom

from dicomnode.catalog.db import open_catalog
from dicomnode.dicom.scu import Destination, associate, client_ae, send_files
from tests.support.dicom_files import series
from tests.support.helpers import free_port, node_cli, storescu, wait_for
from tests.support.pacs import RefusingSCP, StoreSCP
from tests.support.pipeline import analysis_overrides, rule, wait_jobs
from tests.support.pki import make_pki
from tests.support.validate import validate

FAST_RETRIES = {"retry_backoff_s": 0.3, "retry_backoff_max_s": 1, "poll_seconds": 0.2, "timeout_s": 5}


def exporting_node(start_node, destination: str, **export):  # noqa: ANN001, ANN003, ANN201
    rules = [{**rule("ct", ["standin-hyperdense"], modality=["CT"]), "destinations": [destination]}]
    return start_node(export={**FAST_RETRIES, **export}, **analysis_overrides(rules=rules))


def exports(node, state: str | None = None) -> list[dict]:  # noqa: ANN001
    out = node_cli(node, "exports", "--json", *(["--state", state] if state else []))
    assert out.returncode == 0, out.stderr
    return [json.loads(line) for line in out.stdout.splitlines()]


def test_sr_seg_and_key_image_arrive_at_pacs_valid_and_are_part_of_the_study(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pacs = StoreSCP(tmp_path / "pacs").start()
    try:
        node = exporting_node(start_node, pacs.destination)
        spec, files = series(tmp_path, 12, lesion_hu=80)
        assert storescu(node, files).returncode == 0
        sent = wait_for(lambda: (rows := exports(node, "sent")) and len(rows) == 3 and rows, timeout=90)
        assert {r["destination"] for r in sent} == {pacs.destination}
        assert sorted(r["kind"] for r in sent) == ["sc", "seg", "sr"]  # each kind a send of its own
        received = {pydicom.dcmread(p).Modality: p for p in pacs.received()}
        assert set(received) == {"SR", "SEG", "OT"}  # OT: the Secondary Capture key image
        for path in received.values():
            validate(path)
            ds = pydicom.dcmread(path)
            assert ds.StudyInstanceUID == spec.study_uid and ds.SeriesDescription.startswith("AI standin-hyperdense")
        listed = node_cli(node, "studies").stdout  # the results are part of the study in our own catalog
        row = next(line for line in listed.splitlines() if spec.study_uid in line)
        assert "SEG" in row and "SR" in row and " 15 " in row, row  # 12 images + SEG + SR + key image
    finally:
        pacs.stop()


def test_a_destination_down_then_back_gets_each_result_exactly_once(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pacs = StoreSCP(tmp_path / "pacs", port=free_port())  # not started: the destination is down
    node = exporting_node(start_node, pacs.destination)
    _, files = series(tmp_path, 8, lesion_hu=80)
    assert storescu(node, files).returncode == 0
    failing = wait_for(lambda: (rows := exports(node)) and all(r["attempts"] >= 2 for r in rows) and rows, timeout=90)
    assert all(r["state"] in ("pending", "sending") for r in failing)
    assert all("not delivered (destination unreachable" in (r["last_error"] or "") for r in failing if r["last_error"])
    assert node.alive()

    node.stop()  # a restart while sends are pending: they resume
    pacs.start()
    try:
        node.start()
        wait_for(lambda: len(exports(node, "sent")) == 3, timeout=60)
        time.sleep(2)  # any duplicate send would arrive now
        assert len(pacs.received()) == 3
    finally:
        pacs.stop()


def test_a_failure_status_worth_retrying_is_retried_then_dead(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    busy = RefusingSCP(0xA700)  # out of resources: worth retrying
    try:
        node = exporting_node(start_node, busy.destination, max_attempts=3)
        _, files = series(tmp_path, 6, lesion_hu=80)
        assert storescu(node, files).returncode == 0
        dead = wait_for(lambda: (rows := exports(node, "dead")) and len(rows) == 3 and rows, timeout=90)
        assert all(r["attempts"] == 3 and "answered failure status 0xA700" in r["last_error"] for r in dead)
        assert busy.offered == 9  # 3 instances x 3 attempts
    finally:
        busy.stop()


def test_a_refusal_retrying_cannot_fix_is_dead_at_once_and_retryable_by_hand(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    wrong = RefusingSCP(0xA900)  # data set does not match SOP class: retrying cannot help
    try:
        node2 = exporting_node(start_node, wrong.destination, max_attempts=5)
        _, files = series(tmp_path, 6, lesion_hu=80)
        assert storescu(node2, files).returncode == 0
        dead = wait_for(lambda: (rows := exports(node2, "dead")) and len(rows) == 3 and rows, timeout=90)
        assert all(r["attempts"] == 1 and "0xA900" in r["last_error"] for r in dead), dead
        retried = node_cli(node2, "exports", "retry", str(dead[0]["id"]))
        assert retried.returncode == 0 and "pending again" in retried.stdout
        assert node_cli(node2, "exports", "retry", "999999").returncode == 1
        wait_for(lambda: wrong.offered >= 4, timeout=30)  # it was tried again
    finally:
        wrong.stop()
    wait_jobs(open_catalog(node2.catalog_url), 1, {"done"})


def tls_pacs(folder: Path) -> tuple[RefusingSCP, dict[str, Path]]:
    """An accepting SCP over TLS with a certificate for localhost signed by a test CA."""
    pki = make_pki(folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(pki["server"], pki["server_key"])
    return RefusingSCP(0x0000, tls=server), pki


def test_results_go_to_a_tls_destination_verified_against_our_ca(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pacs, pki = tls_pacs(tmp_path)
    try:
        node = exporting_node(start_node, pacs.destination, tls_ca_file=str(pki["ca"]))
        _, files = series(tmp_path, 6, lesion_hu=80)
        assert storescu(node, files).returncode == 0
        wait_for(lambda: len(exports(node, "sent")) == 3, timeout=90)
        assert pacs.offered == 3
    finally:
        pacs.stop()


def test_a_tls_destination_with_an_untrusted_certificate_is_not_sent_to(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pacs, _ = tls_pacs(tmp_path)
    try:
        node = exporting_node(start_node, pacs.destination)  # no tls_ca_file: the system CAs do not know ours
        _, files = series(tmp_path, 6, lesion_hu=80)
        assert storescu(node, files).returncode == 0
        failing = wait_for(
            lambda: (rows := exports(node)) and all(r["attempts"] >= 2 for r in rows) and rows, timeout=90
        )
        assert all("not delivered" in (r["last_error"] or "") for r in failing if r["last_error"])
        assert pacs.offered == 0
    finally:
        pacs.stop()


def test_each_destination_gets_the_kinds_it_takes(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    full, key_images_only = StoreSCP(tmp_path / "full").start(), StoreSCP(tmp_path / "old").start()
    states = StoreSCP(tmp_path / "gsps").start()
    try:
        destinations = [full.destination, key_images_only.destination, states.destination]
        rules = [{**rule("ct", ["standin-hyperdense"], modality=["CT"]), "destinations": destinations}]
        kinds = {key_images_only.destination: ["sc"], states.destination: ["gsps", "kos"]}
        node = start_node(export={**FAST_RETRIES, "kinds_by_destination": kinds}, **analysis_overrides(rules=rules))
        _, files = series(tmp_path, 8, lesion_hu=80)
        assert storescu(node, files).returncode == 0
        wait_for(lambda: len(exports(node, "sent")) == 6, timeout=90)  # 3 default kinds + 1 + 2
        assert sorted(pydicom.dcmread(p).Modality for p in full.received()) == ["OT", "SEG", "SR"]
        assert [pydicom.dcmread(p).Modality for p in key_images_only.received()] == ["OT"]
        received = {pydicom.dcmread(p).Modality: p for p in states.received()}
        assert set(received) == {"PR", "KO"}  # on request only: the others never got them
        for path in received.values():
            validate(path)
    finally:
        for scp in (full, key_images_only, states):
            scp.stop()


def test_our_associations_to_a_pacs_send_each_pdu_at_once(tmp_path: Path) -> None:
    """TCP_NODELAY on the sockets we open (exports, `dicomnode send`): without it Nagle held back the tail of each
    C-STORE until the PACS's delayed ACK, 40 ms an instance on loopback (measured: 48-90 ms per CT slice to
    storescp, 5 ms with it on both sides). Asserted on the socket itself: a timing would be flaky on a loaded
    machine."""
    pacs = StoreSCP(tmp_path / "pacs").start()
    try:
        _, files = series(tmp_path, 2, lesion_hu=80)
        ds = pydicom.dcmread(files[0])
        ae = client_ae("DICOMNODE", 10)
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
        assoc = associate(ae, Destination.parse(pacs.destination))
        try:
            assert assoc.dul.socket.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        finally:
            assoc.release()
        assert all(r.ok for r in send_files(files, Destination.parse(pacs.destination)))
        assert len(pacs.received()) == 2
    finally:
        pacs.stop()
