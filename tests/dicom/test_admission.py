"""Who may associate: peer allowlist (AE title + address), our called AE titles, TLS."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
from pynetdicom import AE, build_context

from tests.support.helpers import NODE_AE, run_dcmtk, wait_for
from tests.support.pki import make_pki

VERIFICATION = [build_context("1.2.840.10008.1.1")]
ALLOWLIST = {"peers": [{"ae_title": "CT1", "hosts": ["127.0.0.1"]}, {"ae_title": "MR1", "hosts": ["10.0.0.0/8"]}]}


def rejection(assoc) -> tuple[int, int, int]:  # noqa: ANN001
    assert assoc.is_rejected, "association was not rejected"
    rj = assoc.acceptor.primitive
    return rj.result, rj.result_source, rj.diagnostic


def test_allowlisted_peer_from_allowed_address_is_accepted(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom=ALLOWLIST)
    assoc = node.associate(VERIFICATION, calling_ae="CT1")
    assert assoc.is_established
    assert int(assoc.send_c_echo().Status) == 0
    assoc.release()
    assert "allowlist is empty" not in node.log()


def test_unknown_calling_ae_is_rejected(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom=ALLOWLIST)
    assert rejection(node.associate(VERIFICATION, calling_ae="STRANGER")) == (1, 1, 3)
    r = run_dcmtk("echoscu", "-aet", "STRANGER", "-aec", NODE_AE, "127.0.0.1", str(node.port))
    assert r.returncode != 0 and "Rejected" in (r.stdout + r.stderr)


def test_known_ae_from_wrong_address_is_rejected(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={**ALLOWLIST, "host": "0.0.0.0"})
    # MR1 may only connect from 10.0.0.0/8; CT1 only from 127.0.0.1, not 127.0.0.2.
    assert rejection(node.associate(VERIFICATION, calling_ae="MR1")) == (1, 1, 3)
    assoc = node.associate(VERIFICATION, calling_ae="CT1", bind_address=("127.0.0.2", 0))
    assert rejection(assoc) == (1, 1, 3)


def test_wrong_called_ae_is_rejected_and_extra_titles_accepted(start_node) -> None:  # noqa: ANN001
    node = start_node(dicom={"extra_ae_titles": ["AI_ROUTER"]})
    assert rejection(node.associate(VERIFICATION, called_ae="SOMEONE_ELSE")) == (1, 1, 7)
    assoc = node.associate(VERIFICATION, called_ae="AI_ROUTER")
    assert assoc.is_established
    assoc.release()


def test_empty_allowlist_accepts_everyone_with_a_warning(node) -> None:  # noqa: ANN001
    assoc = node.associate(VERIFICATION, calling_ae="ANYONE")
    assert assoc.is_established
    assoc.release()
    assert "peer allowlist is empty" in node.log()


def client_tls(pki: dict[str, Path], with_cert: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(pki["ca"]))
    if with_cert:
        ctx.load_cert_chain(pki["client"], pki["client_key"])
    return ctx


def tls_echo(port: int, ctx: ssl.SSLContext | None) -> bool:
    ae = AE(ae_title="TLSSCU")
    ae.requested_contexts = VERIFICATION
    ae.acse_timeout = ae.network_timeout = 5
    assoc = ae.associate("127.0.0.1", port, ae_title=NODE_AE, tls_args=(ctx, "localhost") if ctx else None)
    if not assoc.is_established:
        return False
    ok = int(assoc.send_c_echo().Status) == 0
    assoc.release()
    return ok


def test_tls_with_required_client_certificate(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pki = make_pki(tmp_path)
    tls = {
        "enabled": True,
        "cert_file": str(pki["server"]),
        "key_file": str(pki["server_key"]),
        "ca_file": str(pki["ca"]),
        "require_client_cert": True,
    }
    node = start_node(dicom={"tls": tls})
    assert tls_echo(node.port, client_tls(pki, with_cert=True))
    assert not tls_echo(node.port, client_tls(pki, with_cert=False))
    assert not tls_echo(node.port, None)  # plain DICOM to a TLS port
    assert node.alive()
    # a WARNING with the peer and the reason (one per address and reason in 10 s), and every refusal counted
    wait_for(lambda: "from 127.0.0.1 refused: TLS handshake failed (PEER_DID_NOT_RETURN_A_CERTIFICATE)" in node.log())
    metrics = httpx.get(f"{node.http_url}/metrics", timeout=10).text
    assert 'dicomnode_associations_total{outcome="rejected",reason="tls_handshake"} 2.0' in metrics


def test_tls_without_client_certificate(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    pki = make_pki(tmp_path)
    tls = {"enabled": True, "cert_file": str(pki["server"]), "key_file": str(pki["server_key"])}
    node = start_node(dicom={"tls": tls})
    assert tls_echo(node.port, client_tls(pki, with_cert=False))
