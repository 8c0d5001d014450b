"""Completion on release: a study sent in one association by a complete_on_release peer completes when that
association is released, long before the quiet period; another peer's study waits for its quiet period; a late
instance reopens the study and it completes again. Real node, dcmtk storescu as the scanners."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Study
from dicomnode.catalog.states import StudyState
from tests.support.dicom_files import series
from tests.support.helpers import storescu, wait_for

QUIET = 600  # seconds: far longer than any wait below, so only a release can complete a study in time


def _studies(node) -> dict[str, tuple[str, int]]:  # noqa: ANN001
    with open_catalog(node.catalog_url).connect() as conn:
        rows = conn.execute(select(Study.study_instance_uid, Study.state, Study.completion_count)).all()
    return {uid: (state, count) for uid, state, count in rows}


@pytest.mark.parametrize("receivers", [1, 3])  # with 3, the associations may land in any receiver process
def test_release_completes_the_study_of_a_peer_that_asks_for_it(start_node, tmp_path: Path, receivers: int) -> None:  # noqa: ANN001
    peers = [{"ae_title": "CT_SCANNER", "complete_on_release": True}, {"ae_title": "OTHER"}]
    node = start_node(
        dicom={"peers": peers, "receivers": receivers},
        assembly={"study_quiet_seconds": QUIET, "poll_seconds": 0.2, "release_grace_seconds": 0.5},
    )
    quick, quick_files = series(tmp_path / "a", 4)
    slow, slow_files = series(tmp_path / "b", 4)
    assert storescu(node, slow_files, "-aet", "OTHER").returncode == 0
    assert storescu(node, quick_files[:3], "-aet", "CT_SCANNER").returncode == 0

    wait_for(lambda: _studies(node).get(quick.study_uid) == (StudyState.COMPLETE, 1), timeout=30)
    assert _studies(node)[slow.study_uid] == (StudyState.OPEN, 0), "a peer without the flag waits its quiet period"
    assert "study complete on release" in node.log()

    # a late instance reopens the study; its release completes it again (the re-run replaces results as today)
    assert storescu(node, quick_files[3:], "-aet", "CT_SCANNER").returncode == 0
    wait_for(lambda: _studies(node)[quick.study_uid] == (StudyState.COMPLETE, 2), timeout=30)
