"""Ingest with real peers: dcmtk storescu/echoscu and a pynetdicom SCU against `dicomnode serve`."""

from __future__ import annotations

import threading
from pathlib import Path

from pydicom import dcmread
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLSLossless,
    RLELossless,
)
from sqlalchemy import select

from dicomnode.catalog.schema import Instance, Patient, Series, Study
from dicomnode.dicom.scu import Destination, send_files
from tests.support.dicom_files import dataset_bytes, one_instance, same_instance_as, series
from tests.support.helpers import NODE_AE, run_dcmtk, storescu


def dest(node) -> Destination:  # noqa: ANN001
    return Destination(NODE_AE, "127.0.0.1", node.port)


def test_echoscu(node) -> None:  # noqa: ANN001
    r = run_dcmtk("echoscu", "-aec", NODE_AE, "127.0.0.1", str(node.port))
    assert r.returncode == 0, r.stderr


def test_storescu_series_is_stored_indexed_and_byte_identical(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    spec, files = series(tmp_path, 8, priority="STAT", reason="fall, headache", body_part="HEAD")
    r = run_dcmtk("storescu", "-aec", NODE_AE, "-aet", "CT_SCANNER", "127.0.0.1", str(node.port), *map(str, files))
    assert r.returncode == 0, r.stderr

    with catalog.connect() as conn:
        study = conn.execute(select(Study)).one()
        rows = conn.execute(select(Instance).order_by(Instance.instance_number)).all()
        ser = conn.execute(select(Series)).one()
        patient = conn.execute(select(Patient)).one()
    assert study.study_instance_uid == spec.study_uid
    assert study.called_ae == NODE_AE
    assert study.requested_procedure_priority == "STAT"
    assert study.reason_for_requested_procedure == "fall, headache"
    assert study.accession_number == spec.accession
    assert ser.modality == "CT" and ser.body_part_examined == "HEAD" and ser.station_name == "SYNCT01"
    assert patient.patient_id == spec.patient.patient_id
    assert len(rows) == 8
    sent = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in files}
    for row in rows:
        assert row.calling_ae == "CT_SCANNER" and row.peer_address == "127.0.0.1"
        stored = node.storage / row.path
        assert row.path == f"{spec.study_uid}/{spec.series_uid}/{row.sop_instance_uid}.dcm"
        assert stored.stat().st_size == row.size_bytes
        assert dataset_bytes(stored) == dataset_bytes(sent[row.sop_instance_uid])
        assert dcmread(stored).file_meta.SourceApplicationEntityTitle == "CT_SCANNER"
    assert list((node.storage / ".tmp").iterdir()) == []


def test_every_transfer_syntax_is_stored_as_received(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    # The node never decodes pixel data, so each file keeps its syntax and bytes exactly;
    # the encapsulated ones carry stand-in fragments, which is all the node ever sees.
    syntaxes = [
        ImplicitVRLittleEndian,
        DeflatedExplicitVRLittleEndian,
        ExplicitVRBigEndian,
        JPEGBaseline8Bit,
        JPEGLossless,
        JPEGLSLossless,
        JPEG2000Lossless,
        RLELossless,
    ]
    files = [_encoded_as(tmp_path, ts) for ts in syntaxes]
    results = send_files(files, dest(node), "TESTSCU")
    assert [r.status for r in results] == [0] * len(files), results
    with catalog.connect() as conn:
        stored = {r.sop_instance_uid: r for r in conn.execute(select(Instance)).all()}
    for path, ts in zip(files, syntaxes, strict=True):
        sop = dcmread(path, stop_before_pixels=True).SOPInstanceUID
        assert stored[sop].transfer_syntax_uid == ts
        assert dataset_bytes(node.storage / stored[sop].path) == dataset_bytes(path)


def _encoded_as(tmp: Path, ts: str) -> Path:
    from pydicom.encaps import encapsulate

    from dicomnode.demo.synthetic import SeriesSpec, ct_slice

    ds = ct_slice(SeriesSpec(rows=16, columns=16), 0)
    ds.file_meta.TransferSyntaxUID = ts
    if ts.is_compressed and ts != DeflatedExplicitVRLittleEndian:
        ds.PixelData = encapsulate([b"\xff\xd8fragment-as-sent\xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    path = tmp / f"ts-{ts}.dcm"
    ds.save_as(path, enforce_file_format=True, little_endian=ts.is_little_endian, implicit_vr=ts.is_implicit_VR)
    return path


def test_concurrent_associations(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    batches = [series(tmp_path / str(i), 6)[1] for i in range(4)]
    results: list[int] = []

    def push(files: list[Path]) -> None:
        r = storescu(node, files)
        results.append(r.returncode)

    threads = [threading.Thread(target=push, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [0, 0, 0, 0]
    with catalog.connect() as conn:
        assert len(conn.execute(select(Instance.id)).all()) == 24
        assert len(conn.execute(select(Study.id)).all()) == 4


def test_duplicate_keep_first_is_idempotent(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    first = one_instance(tmp_path, "a.dcm", SeriesDescription="first")
    again = same_instance_as(first, tmp_path, "b.dcm", SeriesDescription="second")
    assert [r.status for r in send_files([first, again, first], dest(node))] == [0, 0, 0]
    with catalog.connect() as conn:
        rows = conn.execute(select(Instance)).all()
    assert len(rows) == 1
    assert dcmread(node.storage / rows[0].path).SeriesDescription == "first"


def test_keep_first_keeps_a_file_already_in_place_and_indexes_it_once(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    # As when another association (maybe another receiver process) placed the same instance a moment ago and its
    # row has not come, or a writer failed to commit: the copy in place is kept and indexed, never replaced under a
    # row that describes the other (before: the last rename won the file, the first insert the row).
    first = one_instance(tmp_path, "a.dcm", SeriesDescription="first")
    again = same_instance_as(first, tmp_path, "b.dcm", SeriesDescription="second")
    ds = dcmread(first, stop_before_pixels=True)
    in_place = node.storage / ds.StudyInstanceUID / ds.SeriesInstanceUID / f"{ds.SOPInstanceUID}.dcm"
    in_place.parent.mkdir(parents=True)
    in_place.write_bytes(first.read_bytes())
    assert [r.status for r in send_files([again], dest(node))] == [0]
    with catalog.connect() as conn:
        rows = conn.execute(select(Instance)).all()
    assert [r.path for r in rows] == [in_place.relative_to(node.storage).as_posix()]
    assert rows[0].size_bytes == in_place.stat().st_size
    assert dcmread(in_place).SeriesDescription == "first"
    assert list((node.storage / ".tmp").iterdir()) == [], "nothing left in the temp folder"


def test_keep_first_two_copies_placed_at_once_keep_one_file_and_its_row(tmp_path: Path) -> None:
    """Two writers of one new instance at once, on one storage and catalog (as two receiver processes are): both
    are answered Success, one file and one row remain, and they describe the same copy."""
    from dicomnode.config.dicom import DuplicatePolicy

    race = TwoCopies(tmp_path, DuplicatePolicy.KEEP_FIRST)
    assert race.stored_at_once() == [0, 0]
    assert race.row_describes_the_file_kept()


def test_overwrite_two_copies_stored_at_once_leave_the_row_of_the_file_kept(tmp_path: Path) -> None:
    """overwrite, two writers of one instance at once (two receiver processes): whichever copy the file is, the
    row describes it. A race, so many rounds: on the code before (rename, then the row) the last rename and the
    last commit were different copies within a few rounds."""
    from dicomnode.config.dicom import DuplicatePolicy

    race = TwoCopies(tmp_path, DuplicatePolicy.OVERWRITE)
    for round_ in range(30):
        assert race.stored_at_once() == [0, 0]
        assert race.row_describes_the_file_kept(), f"round {round_}: the row describes another copy"


class TwoCopies:
    """Two Ingests on one storage and catalog (as two receiver processes are), each with its own copy of one
    instance (different descriptions, so different sizes)."""

    def __init__(self, tmp_path: Path, policy) -> None:  # noqa: ANN001
        from dicomnode.catalog.db import open_catalog
        from dicomnode.catalog.schema import Base
        from dicomnode.receive.ingest import Ingest, StoreRequest
        from dicomnode.receive.storage import Storage

        self.catalog = open_catalog(f"sqlite:///{tmp_path / 'c.sqlite'}")
        Base.metadata.create_all(self.catalog)
        self.storage = Storage(tmp_path / "storage")
        first = one_instance(tmp_path, "a.dcm", SeriesDescription="first")
        again = same_instance_as(first, tmp_path, "b.dcm", SeriesDescription="second, a longer description")
        ds = dcmread(first, stop_before_pixels=True)
        syntax = str(ds.file_meta.TransferSyntaxUID)
        self.copies = [
            StoreRequest(ds.SOPClassUID, ds.SOPInstanceUID, syntax, "SCU", "NODE", "127.0.0.1", dataset_bytes(path))
            for path in (first, again)
        ]
        self.ingests = [Ingest(self.storage, self.catalog, policy, 1 << 30) for _ in range(2)]

    def stored_at_once(self) -> list[int]:
        """Both copies stored from two threads released together; their statuses."""
        start, outcomes = threading.Barrier(2), []

        def store(ingest, req) -> None:  # noqa: ANN001
            start.wait()
            outcomes.append(ingest.store(req).status)

        threads = [threading.Thread(target=store, args=pair) for pair in zip(self.ingests, self.copies, strict=True)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcomes

    def row_describes_the_file_kept(self) -> bool:
        with self.catalog.connect() as conn:
            [row] = conn.execute(select(Instance)).all()
        return row.size_bytes == self.storage.absolute(row.path).stat().st_size


def test_duplicate_overwrite_policy_replaces(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    from dicomnode.catalog.db import open_catalog

    node = start_node(dicom={"duplicate_policy": "overwrite"})
    first = one_instance(tmp_path, "a.dcm", SeriesDescription="first")
    again = same_instance_as(first, tmp_path, "b.dcm", SeriesDescription="second")
    assert [r.status for r in send_files([first, again], dest(node))] == [0, 0]
    with open_catalog(node.catalog_url).connect() as conn:
        rows = conn.execute(select(Instance)).all()
    assert len(rows) == 1
    assert dcmread(node.storage / rows[0].path).SeriesDescription == "second"


def test_dicomnode_send_cli(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    import subprocess
    import sys

    _, files = series(tmp_path / "study", 3)
    to = f"{NODE_AE}@127.0.0.1:{node.port}"
    r = subprocess.run(
        [sys.executable, "-m", "dicomnode", "send", str(tmp_path / "study"), "--to", to],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert "sent 3 of 3" in r.stdout
    with catalog.connect() as conn:
        assert len(conn.execute(select(Instance.id)).all()) == 3

    not_dicom = tmp_path / "notes.txt"
    not_dicom.write_text("not an image")
    r = subprocess.run(
        [sys.executable, "-m", "dicomnode", "send", str(not_dicom), str(files[0]), "--to", to],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "notes.txt" in r.stderr and "not a DICOM Part 10 file" in r.stderr
    assert "sent 1 of 2" in r.stdout


def test_private_sop_class_is_stored(node, catalog, tmp_path: Path) -> None:  # noqa: ANN001
    private = "1.3.12.2.1107.5.9.1"  # a vendor's private non-image storage class
    path = one_instance(tmp_path, "private.dcm", SOPClassUID=private, meta_MediaStorageSOPClassUID=private)
    [result] = send_files([path], dest(node))
    assert result.status == 0, result
    with catalog.connect() as conn:
        row = conn.execute(select(Instance)).one()
    assert row.sop_class_uid == private
    assert dataset_bytes(node.storage / row.path) == dataset_bytes(path)
