"""Retention: old studies go, oldest first, files and rows together, with an audit row that outlives them; a
study with anything still open (item, job, send, notification) stays; the disk watermark; dry run lists and
deletes nothing (CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select, update

from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.schema import Export, Instance, Job, Patient, Series, Study, WorkItem
from dicomnode.catalog.states import OutboxState, WorkItemState
from dicomnode.config.ops import RetentionConfig
from dicomnode.ops import audit
from dicomnode.ops.retention import apply, plan
from dicomnode.receive.storage import Storage
from tests.support.helpers import CHILD_ENV, write_config
from tests.support.worklist_data import add_study

DAY = 24 * 60


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return Storage(tmp_path / "storage")


@pytest.fixture
def catalog(tmp_path: Path) -> Engine:
    return open_catalog(f"sqlite:///{tmp_path / 'catalog.sqlite'}")


def stored_study(catalog: Engine, storage: Storage, days_ago: float, read: bool = True) -> tuple[int, str, Path]:
    """A complete study with one stored instance, on the worklist; `read`: its item is completed."""
    with catalog.begin() as conn:
        pk = add_study(conn, "ROUTINE", days_ago * DAY, now=utcnow())
        study_uid = conn.execute(select(Study.study_instance_uid).where(Study.id == pk)).scalar_one()
        series_pk, series_uid = conn.execute(
            select(Series.id, Series.series_instance_uid).where(Series.study_fk == pk)
        ).one()
        path = storage.relative_path(study_uid, series_uid, study_uid + ".1")
        size = storage.write_durably(path, [b"\0" * 4096])
        conn.execute(
            insert(Instance.__table__).values(
                series_fk=series_pk,
                sop_instance_uid=study_uid + ".1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                path=path,
                size_bytes=size,
                calling_ae="CT1",
                called_ae="N",
                peer_address="127.0.0.1",
                received_at=utcnow(),
            )
        )
        if read:
            conn.execute(update(WorkItem).where(WorkItem.study_fk == pk).values(state=WorkItemState.COMPLETED))
    return pk, study_uid, storage.absolute(path)


def test_old_studies_are_deleted_with_their_files_and_an_audit_row(catalog: Engine, storage: Storage) -> None:
    old_pk, old_uid, old_file = stored_study(catalog, storage, 40)
    _, new_uid, new_file = stored_study(catalog, storage, 2)
    policy = RetentionConfig(max_age_days=30)
    [doomed] = plan(catalog, storage, policy)
    assert (doomed.study_instance_uid, doomed.reason, doomed.size_bytes) == (old_uid, "older than 30 days", 4096)
    assert apply(catalog, storage, [doomed]) == 1
    assert not old_file.exists() and new_file.exists()
    with catalog.connect() as conn:
        assert conn.execute(select(Study.study_instance_uid)).scalars().all() == [new_uid]
        assert conn.execute(select(func.count()).select_from(Instance)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(WorkItem)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(Patient)).scalar() == 1, "its patient went with it"
        [deleted] = audit.trail(conn, old_uid)
    assert (deleted.action, deleted.actor) == ("deleted", "retention")
    assert deleted.detail == "1 instances, 4096 bytes: older than 30 days"
    assert plan(catalog, storage, policy) == []


@pytest.mark.parametrize("still_open", ["unread", "job running", "export pending", "study open"])
def test_a_study_with_anything_open_is_never_deleted(catalog: Engine, storage: Storage, still_open: str) -> None:
    pk, _, path = stored_study(catalog, storage, 400, read=still_open != "unread")
    with catalog.begin() as conn:
        if still_open == "job running":
            conn.execute(
                insert(Job.__table__).values(
                    study_fk=pk,
                    model="m",
                    queue="q",
                    priority=6,
                    series_uids=[],
                    destinations=[],
                    rules=[],
                    state="running",
                    generation=1,
                    created_at=utcnow(),
                    not_before=utcnow(),
                )
            )
        elif still_open == "export pending":
            conn.execute(
                insert(Export.__table__).values(
                    study_fk=pk,
                    result_uid="2.25.1",
                    sop_instance_uid="2.25.2",
                    path="x",
                    destination="P@h:1",
                    state=OutboxState.PENDING,
                    not_before=utcnow(),
                    created_at=utcnow(),
                )
            )
        elif still_open == "study open":
            conn.execute(update(Study).where(Study.id == pk).values(state="open"))
    assert plan(catalog, storage, RetentionConfig(max_age_days=1)) == []
    assert path.exists()


def test_disk_watermark_deletes_oldest_first(catalog: Engine, storage: Storage) -> None:
    """A watermark this disk is always above: every deletable study goes, oldest first; open ones stay."""
    uids = [stored_study(catalog, storage, days)[1] for days in (3, 9, 5)]
    unread = stored_study(catalog, storage, 20, read=False)[1]
    doomed = plan(catalog, storage, RetentionConfig(disk_high_watermark_percent=0.001))
    assert [d.study_instance_uid for d in doomed] == [uids[1], uids[2], uids[0]]
    assert {d.reason for d in doomed} == {"disk above 0.001%"} and unread not in {d.study_instance_uid for d in doomed}


def test_dry_run_lists_and_deletes_nothing(catalog: Engine, storage: Storage, tmp_path: Path) -> None:
    _, uid, path = stored_study(catalog, storage, 40)
    config = write_config(
        tmp_path / "dicomnode.toml",
        {
            "storage": {"path": str(storage.root), "min_free_bytes": 0},
            "catalog": {"url": str(catalog.url)},
            "routing": {"rules": []},
            "retention": {"max_age_days": 30},
        },
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "dicomnode", "retention", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=CHILD_ENV,
            check=False,
        )

    dry = run("--dry-run")
    assert dry.returncode == 0 and f"would delete {uid}" in dry.stdout and "older than 30 days" in dry.stdout
    assert "1 studies would be deleted (dry run: nothing deleted)" in dry.stdout and path.exists()
    real = run()
    assert real.returncode == 0 and "1 studies deleted" in real.stdout and not path.exists()
    audit_cli = subprocess.run(
        [sys.executable, "-m", "dicomnode", "audit", uid, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
        check=False,
    )
    assert audit_cli.returncode == 0 and "deleted" in audit_cli.stdout and "retention" in audit_cli.stdout


def test_retention_without_a_policy_is_a_clear_error(tmp_path: Path) -> None:
    sections = {"routing": {"rules": []}, "catalog": {"url": f"sqlite:///{tmp_path / 'c.sqlite'}"}}
    config = write_config(tmp_path / "dicomnode.toml", sections)
    result = subprocess.run(
        [sys.executable, "-m", "dicomnode", "retention", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=CHILD_ENV,
        check=False,
    )
    assert result.returncode == 2 and "retention.max_age_days" in result.stderr
