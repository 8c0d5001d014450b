"""Query/Retrieve with Orthanc on the other side: the node pulls a study from Orthanc (`dicomnode retrieve`, and
POST /api/retrieve: C-FIND by accession, C-MOVE to the node), and Orthanc queries and retrieves from the node
(its /modalities/{id}/query and /queries/{id}/answers/{n}/retrieve REST calls)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Instance, Series, Study
from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, READERS, free_port, node_cli, storescu, wait_for
from tests.support.pacs import OrthancPACS

ADA = {"Authorization": f"Bearer {READERS[0]['token']}"}


@pytest.fixture
def setup(start_node, tmp_path: Path):  # noqa: ANN001, ANN201
    node_port = free_port()
    orthanc = OrthancPACS(tmp_path / "orthanc", modalities={"dicomnode": [NODE_AE, "127.0.0.1", node_port]}).start()
    node = start_node(
        dicom={"port": node_port, "peers": [{"ae_title": "ORTHANC", "hosts": ["127.0.0.1"], "port": orthanc.port}]}
    )
    yield node, orthanc
    orthanc.stop()


def _instances_of(node, study_uid: str) -> int:  # noqa: ANN001
    with open_catalog(node.catalog_url).connect() as conn:
        return conn.execute(
            select(func.count())
            .select_from(Instance)
            .join(Series, Series.id == Instance.series_fk)
            .join(Study, Study.id == Series.study_fk)
            .where(Study.study_instance_uid == study_uid)
        ).scalar_one()


def _upload(orthanc: OrthancPACS, files: list[Path]) -> None:
    for path in files:
        assert httpx.post(f"{orthanc.url}/instances", content=path.read_bytes(), timeout=30).status_code == 200


def test_the_node_pulls_a_study_from_orthanc(setup, tmp_path: Path) -> None:  # noqa: ANN001
    node, orthanc = setup
    spec, files = series(tmp_path / "pacs-study", n=4, accession="PULLACC1")
    _upload(orthanc, files)
    done = node_cli(node, "retrieve", "--from", orthanc.destination, "--accession", "PULLACC1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{spec.study_uid}: 4 instances sent" in done.stdout
    assert wait_for(lambda: _instances_of(node, spec.study_uid) == 4, timeout=30)

    other, files = series(tmp_path / "pacs-study-2", n=2, accession="PULLACC2")
    _upload(orthanc, files)
    answer = httpx.post(
        f"{node.http_url}/api/retrieve",
        json={"source": orthanc.destination, "accession_number": "PULLACC2"},
        headers=ADA,
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["studies"] == [{"study_instance_uid": other.study_uid, "completed": 2, "failed": 0}]
    assert wait_for(lambda: _instances_of(node, other.study_uid) == 2, timeout=30)


def test_retrieve_bad_requests(setup) -> None:  # noqa: ANN001
    node, orthanc = setup
    url = f"{node.http_url}/api/retrieve"
    assert httpx.post(url, json={"source": orthanc.destination, "accession_number": "X"}).status_code == 401
    both = {"source": orthanc.destination, "accession_number": "X", "study_instance_uid": "1.2.3"}
    assert httpx.post(url, json=both, headers=ADA).status_code == 422
    assert httpx.post(url, json={"source": "nonsense", "accession_number": "X"}, headers=ADA).status_code == 422
    unknown = httpx.post(url, json={"source": orthanc.destination, "accession_number": "NOSUCH"}, headers=ADA)
    assert unknown.status_code == 502
    assert "no study" in unknown.json()["detail"]
    done = node_cli(node, "retrieve", "--from", orthanc.destination)
    assert done.returncode == 2


def test_orthanc_queries_and_retrieves_from_the_node(setup, tmp_path: Path) -> None:  # noqa: ANN001
    node, orthanc = setup
    spec, files = series(tmp_path / "node-study", n=3, accession="NODEACC1")
    assert storescu(node, files, "-aet", "ORTHANC").returncode == 0
    query = httpx.post(
        f"{orthanc.url}/modalities/dicomnode/query",
        json={"Level": "Study", "Query": {"AccessionNumber": "NODEACC1", "StudyInstanceUID": ""}},
        timeout=30,
    )
    assert query.status_code == 200, query.text
    query_id = query.json()["ID"]
    answers = httpx.get(f"{orthanc.url}/queries/{query_id}/answers?expand", timeout=30).json()
    assert [a["0020,000d"]["Value"] for a in answers] == [spec.study_uid]
    moved = httpx.post(
        f"{orthanc.url}/queries/{query_id}/answers/0/retrieve", json={"TargetAet": "ORTHANC"}, timeout=60
    )
    assert moved.status_code == 200, moved.text
    studies = httpx.get(f"{orthanc.url}/studies?expand", timeout=30).json()
    assert [s["MainDicomTags"]["StudyInstanceUID"] for s in studies] == [spec.study_uid]
    assert len(httpx.get(f"{orthanc.url}/instances", timeout=30).json()) == 3
