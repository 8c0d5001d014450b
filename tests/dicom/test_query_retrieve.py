"""The node as a Query/Retrieve SCP, driven by dcmtk findscu, movescu and getscu at every level: matches with
wildcards, date ranges and UID lists; C-MOVE only to a peer configured with a port; C-GET over the same
association; every retrieve audited; bad identifiers answered with their status."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pydicom
import pytest
from sqlalchemy import select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import AuditEvent
from dicomnode.config.dicom import DicomConfig
from dicomnode.demo.synthetic import SyntheticPatient
from dicomnode.dicom.retrieve import Retrieval, handle_move
from dicomnode.dicom.scu import SEND_AT_ONCE
from dicomnode.receive.storage import Storage
from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, run_dcmtk, storescu, wait_for
from tests.support.pacs import StoreSCP

VIEWER = "VIEWER"


@pytest.fixture
def viewer(tmp_path: Path):  # noqa: ANN201
    scp = StoreSCP(tmp_path / "viewer", ae_title=VIEWER).start()
    yield scp
    scp.stop()


@pytest.fixture
def loaded(start_node, viewer: StoreSCP, tmp_path: Path):  # noqa: ANN001, ANN201
    """A node holding two studies of two patients; VIEWER may query it and be a C-MOVE destination."""
    node = start_node(
        dicom={"peers": [{"ae_title": VIEWER, "hosts": ["127.0.0.1"], "port": viewer.port}]},
        assembly={"study_quiet_seconds": 1, "poll_seconds": 0.2},
    )
    alice = SyntheticPatient(name="ZZALICE^QR", patient_id="QRPID1")
    bob = SyntheticPatient(name="ZZBOB^QR", patient_id="QRPID2")
    one, files_one = series(tmp_path / "a", n=3, accession="QRACC1", patient=alice, study_date="20261101")
    two, files_two = series(tmp_path / "b", n=2, accession="QRACC2", patient=bob, study_date="20261115", modality="MR")
    for files in (files_one, files_two):
        assert storescu(node, files, "-aet", VIEWER).returncode == 0
    return node, one, two


def findscu(node, tmp: Path, *keys: str, model: str = "-S") -> list[pydicom.Dataset]:  # noqa: ANN001
    out = tmp / f"find-{len(list(tmp.glob('find-*')))}"
    out.mkdir(parents=True)
    args = ["findscu", model, "-aet", VIEWER, "-aec", NODE_AE, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    done = run_dcmtk(*args, "127.0.0.1", str(node.port))
    assert done.returncode == 0, done.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_find_at_every_level(loaded, tmp_path: Path) -> None:  # noqa: ANN001
    node, one, two = loaded
    patients = findscu(node, tmp_path, "QueryRetrieveLevel=PATIENT", "PatientID", "PatientName=ZZ*", model="-P")
    assert sorted(str(p.PatientID) for p in patients) == ["QRPID1", "QRPID2"]
    studies = findscu(
        node,
        tmp_path,
        "QueryRetrieveLevel=STUDY",
        "StudyInstanceUID",
        "AccessionNumber=QRACC1",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "PatientName",
    )
    assert [(s.StudyInstanceUID, s.ModalitiesInStudy, s.NumberOfStudyRelatedInstances) for s in studies] == [
        (one.study_uid, "CT", 3)
    ]
    assert str(studies[0].PatientName) == "ZZALICE^QR"
    assert set(studies[0].dir()) == {
        "QueryRetrieveLevel",
        "StudyInstanceUID",
        "AccessionNumber",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
        "PatientName",
    }  # exactly the keys asked for
    in_range = findscu(node, tmp_path, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "StudyDate=20261110-20261130")
    assert [s.StudyInstanceUID for s in in_range] == [two.study_uid]
    listed = findscu(node, tmp_path, "QueryRetrieveLevel=STUDY", f"StudyInstanceUID={one.study_uid}\\{two.study_uid}")
    assert sorted(s.StudyInstanceUID for s in listed) == sorted([one.study_uid, two.study_uid])
    by_modality = findscu(node, tmp_path, "QueryRetrieveLevel=STUDY", "StudyInstanceUID", "ModalitiesInStudy=MR")
    assert [s.StudyInstanceUID for s in by_modality] == [two.study_uid]
    found_series = findscu(
        node,
        tmp_path,
        "QueryRetrieveLevel=SERIES",
        f"StudyInstanceUID={one.study_uid}",
        "SeriesInstanceUID",
        "Modality",
    )
    assert [(s.SeriesInstanceUID, s.Modality) for s in found_series] == [(one.series_uid, "CT")]
    images = findscu(
        node,
        tmp_path,
        "QueryRetrieveLevel=IMAGE",
        f"StudyInstanceUID={one.study_uid}",
        f"SeriesInstanceUID={one.series_uid}",
        "SOPInstanceUID",
        "InstanceNumber",
    )
    assert len(images) == 3


def test_find_without_a_level_is_refused_with_a900(loaded, tmp_path: Path) -> None:  # noqa: ANN001
    node, _, _ = loaded
    done = run_dcmtk(
        "findscu", "-v", "-S", "-aet", VIEWER, "-aec", NODE_AE, "-k", "PatientID", "127.0.0.1", str(node.port)
    )
    assert "datasetdoesnotmatchsopclass" in (done.stdout + done.stderr).lower()
    assert findscu(node, tmp_path, "QueryRetrieveLevel=STUDY", "StudyInstanceUID")  # still serving


def _audited(node) -> list:  # noqa: ANN001
    with open_catalog(node.catalog_url).connect() as conn:
        return conn.execute(select(AuditEvent).where(AuditEvent.action == "retrieved")).all()


def test_move_a_study_to_a_configured_peer(loaded, viewer: StoreSCP) -> None:  # noqa: ANN001
    node, one, _ = loaded
    done = run_dcmtk(
        "movescu", "-S", "-aet", VIEWER, "-aec", NODE_AE, "-aem", VIEWER, "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={one.study_uid}", "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = wait_for(lambda: len(viewer.received()) == 3 and viewer.received(), timeout=30)
    assert {str(pydicom.dcmread(p).StudyInstanceUID) for p in got} == {one.study_uid}
    (event,) = wait_for(lambda: _audited(node), timeout=10)
    assert (event.study_instance_uid, event.actor) == (one.study_uid, VIEWER)
    assert "C-MOVE to VIEWER: 3 of 3" in event.detail


def test_move_to_an_unknown_destination_is_refused_a801(loaded, viewer: StoreSCP) -> None:  # noqa: ANN001
    node, one, _ = loaded
    done = run_dcmtk(
        "movescu", "-S", "-aet", VIEWER, "-aec", NODE_AE, "-aem", "STRANGER", "-k", "QueryRetrieveLevel=STUDY",
        "-k", f"StudyInstanceUID={one.study_uid}", "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert "movedestinationunknown" in (done.stdout + done.stderr).lower()
    assert viewer.received() == []
    assert _audited(node) == []


def test_get_a_series_over_the_same_association(loaded, tmp_path: Path) -> None:  # noqa: ANN001
    node, _, two = loaded
    out = tmp_path / "got"
    out.mkdir()
    done = run_dcmtk(
        "getscu", "-S", "-aet", VIEWER, "-aec", NODE_AE, "-od", str(out), "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"StudyInstanceUID={two.study_uid}", "-k", f"SeriesInstanceUID={two.series_uid}",
        "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = sorted(out.iterdir())
    assert len(got) == 2
    assert {str(pydicom.dcmread(p).SeriesInstanceUID) for p in got} == {two.series_uid}
    (event,) = _audited(node)
    assert "C-GET: 2 of 2" in event.detail


def test_a_retrieve_of_everything_is_refused(loaded, viewer: StoreSCP) -> None:  # noqa: ANN001
    node, _, _ = loaded
    done = run_dcmtk(
        "movescu", "-S", "-aet", VIEWER, "-aec", NODE_AE, "-aem", VIEWER, "-k", "QueryRetrieveLevel=STUDY",
        "-k", "StudyInstanceUID=", "127.0.0.1", str(node.port),
    )  # fmt: skip
    assert "datasetdoesnotmatchsopclass" in (done.stdout + done.stderr).lower()
    assert viewer.received() == []


def test_a_move_opens_its_association_to_send_each_pdu_at_once(tmp_path: Path) -> None:
    """pynetdicom opens C-MOVE's association to the destination with what the handler yields: the handlers that set
    TCP_NODELAY are among them, as on the associations we open ourselves (tests/export/test_export.py checks the
    socket there). Without it each instance moved waited for the viewer's delayed ACK. pynetdicom's event is
    stood in for by the three attributes the handler reads."""
    dicom = DicomConfig(peers=[{"ae_title": VIEWER, "hosts": ["127.0.0.1"], "port": 11112}])
    retrieval = Retrieval(open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}"), Storage(tmp_path / "s"), dicom)
    identifier = pydicom.Dataset()
    identifier.QueryRetrieveLevel, identifier.StudyInstanceUID = "STUDY", "1.2.3"
    requestor = SimpleNamespace(requestor=SimpleNamespace(ae_title=VIEWER))
    event = SimpleNamespace(assoc=requestor, move_destination=VIEWER, identifier=identifier)
    host, port, arguments = next(handle_move(event, retrieval))
    assert (host, port) == ("127.0.0.1", 11112) and arguments["evt_handlers"] == SEND_AT_ONCE
