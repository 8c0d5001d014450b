"""After a crash the catalog and storage agree again: orphans indexed or quarantined, deletions finished."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from pathlib import Path

from pydicom import dcmread
from sqlalchemy import func, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import Instance, Study
from dicomnode.receive.reconcile import finish_deletions, survey
from dicomnode.receive.storage import Storage
from tests.support.dicom_files import one_instance, series
from tests.support.helpers import NODE_AE, dicomnode_cli, require_tool, run_dcmtk, wait_for


def catalogued(node) -> set[str]:  # noqa: ANN001
    with open_catalog(node.catalog_url).connect() as conn:
        return set(conn.scalars(select(Instance.sop_instance_uid)))


def stored_then_stopped(node, tmp_path: Path, n: int):  # noqa: ANN001, ANN201
    """The node, after storescu sent it a series of `n` and it was stopped."""
    _, files = series(tmp_path, n)
    r = run_dcmtk("storescu", "-aec", NODE_AE, "127.0.0.1", str(node.port), *map(str, files))
    assert r.returncode == 0, r.stderr
    node.stop()
    return node


def test_a_file_renamed_into_place_before_a_sigkill_is_indexed_at_the_next_start(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node()
    instance = one_instance(tmp_path, "one.dcm")
    uid = dcmread(instance).SOPInstanceUID
    # Hold the catalog's write lock (SQLite, WAL: readers pass), so the node blocks between rename and commit.
    lock = sqlite3.connect(node.catalog_url.removeprefix("sqlite:///"), isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    sender = subprocess.Popen(
        [require_tool("storescu"), "-aec", NODE_AE, "127.0.0.1", str(node.port), str(instance)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: list(node.storage.rglob(f"{uid}.dcm")), timeout=30)  # durable, not yet catalogued
        node.stop(signal.SIGKILL)
    finally:
        sender.kill()
        sender.wait()
        lock.execute("ROLLBACK")
        lock.close()
    assert uid not in catalogued(node)
    node.start()
    assert uid in catalogued(node)  # indexed before the listener opened
    assert "storage reconciled: 1 files without a catalog row indexed, 0 quarantined" in node.log()
    with open_catalog(node.catalog_url).connect() as conn:
        assert conn.scalar(select(func.count()).select_from(Study)) == 1


def test_unreadable_orphans_are_quarantined_and_doctor_lists_them(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = stored_then_stopped(start_node(), tmp_path, 3)
    stored = sorted(node.storage.rglob("*.dcm"))
    series_dir = stored[0].parent
    (series_dir / "1.2.3.4.dcm").write_bytes(b"\x00" * 128 + b"DICM" + b"garbage")  # no catalog row, unreadable
    truncated = stored[1].read_bytes()[:-100]
    stored[1].unlink()  # catalogued, file missing
    stored[2].write_bytes(stored[2].read_bytes() + b"\x00\x00")  # catalogued, size differs
    (series_dir / "9.9.9.dcm").write_bytes(truncated)  # no row, not one complete data set

    doctor = dicomnode_cli("doctor", "--config", str(node.workdir / "dicomnode.toml"), "--json")
    assert doctor.returncode == 1, doctor.stderr
    found = json.loads(doctor.stdout)
    assert (found["instances"], len(found["missing"]), len(found["size_mismatch"])) == (3, 1, 1)
    assert sorted(Path(p).name for p in found["orphans"]) == ["1.2.3.4.dcm", "9.9.9.dcm"]

    node.start()
    wait_for(lambda: "storage reconciled: 0 files without a catalog row indexed, 2 quarantined" in node.log())
    assert "not one complete data set" in node.log()
    node.stop()
    text = dicomnode_cli("doctor", "--config", str(node.workdir / "dicomnode.toml"))
    assert text.returncode == 1
    assert text.stdout.count("quarantined: ") == 2 and "no catalog row" not in text.stdout
    assert "missing file: " in text.stdout and "size differs: " in text.stdout


def test_an_interrupted_deletion_is_finished_not_resurrected(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = stored_then_stopped(start_node(), tmp_path, 2)
    storage, catalog = Storage(node.storage), open_catalog(node.catalog_url)
    kept, forgotten = sorted(p.relative_to(storage.root).as_posix() for p in node.storage.rglob("*.dcm"))
    # As retention leaves it when killed after its commit: the tombstone, one row forgotten, its file still there.
    storage.write_tombstone("study-1", [kept, forgotten])
    with catalog.begin() as conn:
        conn.execute(Instance.__table__.delete().where(Instance.path == forgotten))
    assert finish_deletions(storage, catalog) == 1
    assert storage.absolute(kept).exists() and not storage.absolute(forgotten).exists()
    assert storage.tombstones() == []
    assert survey(storage, catalog).healthy
