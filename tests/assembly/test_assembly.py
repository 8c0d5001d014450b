"""Study completion by quiet period, reopening, dispatch failures, and restart."""

from __future__ import annotations

import signal
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Connection, select

from dicomnode.assembly.completion import complete_quiet_studies
from dicomnode.assembly.hooks import CompletedStudy
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.records import Receipt, record_instance
from dicomnode.catalog.schema import Instance, Study
from dicomnode.catalog.states import StudyState
from tests.support.dicom_files import series
from tests.support.helpers import NODE_AE, storescu, wait_for
from tests.support.instances import header


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.seen: list[CompletedStudy] = []
        self.fail = fail

    def study_completed(self, conn: Connection, study: CompletedStudy) -> None:
        if self.fail:
            raise RuntimeError("dispatcher down")
        self.seen.append(study)

    def after_commit(self, study: CompletedStudy) -> None:
        assert study in self.seen


def receive(catalog, sop: str, at) -> None:  # noqa: ANN001
    with catalog.begin() as conn:
        receipt = Receipt("CT1", NODE_AE, "127.0.0.1", "1.2.840.10008.1.2.1", at)
        record_instance(conn, header(sop), receipt, f"x/{sop}.dcm", 10)


def state(catalog) -> tuple[str, int]:  # noqa: ANN001
    with catalog.connect() as conn:
        row = conn.execute(select(Study.state, Study.completion_count)).one()
    return row[0], row[1]


def test_quiet_period_completion_and_reopen(any_catalog) -> None:  # noqa: ANN001
    catalog = any_catalog
    t0 = utcnow()
    receive(catalog, "1.2.3.1.1", t0)
    receive(catalog, "1.2.3.1.2", t0 + timedelta(seconds=4))
    rec = Recorder()
    assert complete_quiet_studies(catalog, rec, 10, now=t0 + timedelta(seconds=13)) == []
    assert state(catalog) == (StudyState.OPEN, 0)
    done = complete_quiet_studies(catalog, rec, 10, now=t0 + timedelta(seconds=14))
    assert [d.study_instance_uid for d in done] == ["1.2.3"] and rec.seen == done
    assert state(catalog) == (StudyState.COMPLETE, 1)
    assert complete_quiet_studies(catalog, rec, 10, now=t0 + timedelta(seconds=60)) == []  # once only

    receive(catalog, "1.2.3.1.3", t0 + timedelta(seconds=100))  # a late instance reopens the study
    assert state(catalog) == (StudyState.OPEN, 1)
    done = complete_quiet_studies(catalog, rec, 10, now=t0 + timedelta(seconds=111))
    assert done[0].completion_count == 2
    assert state(catalog) == (StudyState.COMPLETE, 2)


def test_failing_dispatch_leaves_the_study_open_for_retry(any_catalog) -> None:  # noqa: ANN001
    catalog = any_catalog
    t0 = utcnow()
    receive(catalog, "1.2.3.1.1", t0)
    later = t0 + timedelta(seconds=30)
    assert complete_quiet_studies(catalog, Recorder(fail=True), 10, now=later) == []
    assert state(catalog) == (StudyState.OPEN, 0)
    assert len(complete_quiet_studies(catalog, Recorder(), 10, now=later)) == 1


def test_node_completes_a_study_after_the_quiet_period(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    spec, files = series(tmp_path, 4)
    assert storescu(node, files).returncode == 0
    assert state(catalog) == (StudyState.OPEN, 0)
    wait_for(lambda: state(catalog) == (StudyState.COMPLETE, 1), timeout=10)
    assert f"study complete study={spec.study_uid}" in node.log()


def test_restart_after_crash_resumes_open_studies(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(assembly={"study_quiet_seconds": 3600})
    _, files = series(tmp_path, 5)
    assert storescu(node, files).returncode == 0
    node.stop(signal.SIGKILL)  # a crash: no clean shutdown
    leftover = node.storage / ".tmp" / "999-1.part"
    leftover.write_bytes(b"half an instance")  # as if the crash hit mid-write

    node.sections["assembly"]["study_quiet_seconds"] = 1
    node.start()
    catalog = open_catalog(node.catalog_url)
    wait_for(lambda: state(catalog) == (StudyState.COMPLETE, 1), timeout=10)
    assert not leftover.exists()
    with catalog.connect() as conn:
        paths = conn.execute(select(Instance.path)).scalars().all()
    assert len(paths) == 5 and all((node.storage / p).is_file() for p in paths)


def test_node_on_postgresql(start_node, postgres_url: str, tmp_path: Path) -> None:  # noqa: ANN001
    from dicomnode.catalog.records import list_studies

    node = start_node(catalog={"url": postgres_url})
    spec, files = series(tmp_path, 4)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(postgres_url)
    wait_for(
        lambda: (
            [s.state for s in list_studies(catalog) if s.study_instance_uid == spec.study_uid] == [StudyState.COMPLETE]
        ),
        timeout=10,
    )
    [summary] = [s for s in list_studies(catalog) if s.study_instance_uid == spec.study_uid]
    assert (summary.instance_count, summary.series_count, summary.modalities) == (4, 1, "CT")
    catalog.dispose()
