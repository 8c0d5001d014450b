"""Storage against the catalog after a crash: orphan files indexed or quarantined, interrupted deletions finished.

Ingest renames a file into place and then commits its row; a crash in between leaves a durable
file the catalog does not know (the sender got no answer and will resend, but until then the
file is seen by nothing, not even retention). At start-up such a file is indexed if it is one
complete, readable instance at the path its UIDs give, and moved to the quarantine folder
otherwise. Retention does the reverse (rows forgotten, then files removed); it leaves a
tombstone listing the files first, so that an interrupted deletion is finished here instead of
its files coming back as orphans.
"""

from __future__ import annotations

import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydicom.filereader import read_file_meta_info
from sqlalchemy import Engine, func, select

from dicomnode.catalog.records import Receipt, instance_exists, record_instance
from dicomnode.catalog.schema import Instance, Study
from dicomnode.receive.header import UnreadableDataset, read_header
from dicomnode.receive.storage import Storage
from dicomnode.receive.wellformed import MalformedDataset, check_complete, inflated

log = logging.getLogger(__name__)
_instances, _studies = Instance.__table__, Study.__table__
# Directories written since the newest catalogued instance (minus this margin) are searched at start-up; a
# file renamed into place just before a crash is in one of them. `dicomnode doctor` searches everything.
RECENT_MARGIN = timedelta(hours=1)


@dataclass
class Reconciled:
    indexed: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    deletions_finished: int = 0


def reconcile(storage: Storage, catalog: Engine, default_called_ae: str) -> Reconciled:
    """Finish interrupted deletions, then index or quarantine the files written since the last catalogued one."""
    done = Reconciled(deletions_finished=finish_deletions(storage, catalog))
    for path in orphans(storage, catalog, since=_newest_receipt(catalog)):
        why = adopt(storage, catalog, path, default_called_ae)
        if why is None:
            done.indexed.append(path)
        else:
            storage.quarantine(path)
            done.quarantined.append((path, why))
    if done.indexed or done.quarantined:
        log.warning(
            "storage reconciled: %d files without a catalog row indexed, %d quarantined (%s)",
            len(done.indexed),
            len(done.quarantined),
            "; ".join(f"{p}: {why}" for p, why in done.quarantined) or "none",
        )
    return done


def orphans(storage: Storage, catalog: Engine, since: datetime | None = None) -> Iterator[str]:
    """Instance files (relative paths) without a catalog row; with `since`, only in directories changed after it."""
    cutoff = since.replace(tzinfo=UTC).timestamp() if since else None
    for series_dir in _series_dirs(storage.root, cutoff):
        prefix = series_dir.relative_to(storage.root).as_posix() + "/"
        on_disk = {prefix + e.name for e in os.scandir(series_dir) if e.is_file() and e.name.endswith(".dcm")}
        if not on_disk:
            continue
        with catalog.connect() as conn:
            known = set(conn.scalars(select(_instances.c.path).where(_instances.c.path.startswith(prefix))))
        yield from sorted(on_disk - known)


def adopt(storage: Storage, catalog: Engine, path: str, default_called_ae: str) -> str | None:
    """Index one orphan file as Ingest would have; None when indexed, else why it cannot be."""
    try:
        data = storage.absolute(path).read_bytes()
        meta, body = _split(storage.absolute(path), data)
    except (OSError, ValueError) as exc:
        return f"unreadable file ({type(exc).__name__})"
    syntax = str(meta.get("TransferSyntaxUID", ""))
    try:
        dataset, ts = inflated(body, syntax)
        check_complete(dataset, ts)
        header = read_header(dataset, ts)
    except (MalformedDataset, UnreadableDataset, ValueError) as exc:
        return f"not one complete data set ({exc})"
    try:
        expected = storage.relative_path(header.study_instance_uid, header.series_instance_uid, header.sop_instance_uid)  # type: ignore[arg-type]
    except ValueError:
        return "invalid UIDs"
    if expected != path or header.sop_instance_uid != str(meta.get("MediaStorageSOPInstanceUID", "")):
        return "path or file meta does not match the data set's UIDs"
    with catalog.connect() as conn:
        if instance_exists(conn, header.sop_instance_uid):
            return "the catalog holds this instance at another path"
        receipt = Receipt(
            calling_ae=str(meta.get("SourceApplicationEntityTitle", "")).strip(),
            called_ae=_called_ae(conn, header.study_instance_uid) or default_called_ae,
            peer_address="",  # not recorded in the file
            transfer_syntax_uid=syntax,
            received_at=datetime.fromtimestamp(storage.absolute(path).stat().st_mtime, UTC).replace(tzinfo=None),
        )
        record_instance(conn, header, receipt, path, len(data))
        conn.commit()
    return None


def finish_deletions(storage: Storage, catalog: Engine) -> int:
    """Remove the files of deletions a crash interrupted (those the catalog no longer holds); their number."""
    finished = 0
    for tombstone, paths in storage.tombstones():
        with catalog.connect() as conn:
            held = set(conn.scalars(select(_instances.c.path).where(_instances.c.path.in_(paths))))
        for path in paths:
            if path not in held:
                storage.absolute(path).unlink(missing_ok=True)
        tombstone.unlink(missing_ok=True)
        finished += 1
    return finished


def _newest_receipt(catalog: Engine) -> datetime | None:
    with catalog.connect() as conn:
        newest = conn.scalar(select(func.max(_instances.c.received_at)))
    return newest - RECENT_MARGIN if newest else None


def _called_ae(conn, study_uid: str) -> str | None:  # noqa: ANN001
    """The called AE the catalog already files this study under, if exactly one."""
    titles = conn.scalars(select(_studies.c.called_ae).where(_studies.c.study_instance_uid == study_uid)).all()
    return titles[0] if len(titles) == 1 else None


def _series_dirs(root: Path, cutoff: float | None) -> Iterator[Path]:
    """<study>/<series> directories (dot folders skipped); with `cutoff`, only series modified after it (a rename
    into a series folder changes its time, not its study folder's)."""
    for study in _subdirs(root, None):
        for series in _subdirs(Path(study.path), cutoff):
            yield Path(series.path)


def _subdirs(directory: Path, cutoff: float | None) -> list[os.DirEntry]:
    with os.scandir(directory) as entries:
        return [
            e
            for e in entries
            if e.is_dir(follow_symlinks=False)
            and not e.name.startswith(".")
            and (cutoff is None or e.stat().st_mtime >= cutoff)
        ]


def _split(path: Path, data: bytes) -> tuple[object, bytes]:
    """File meta and data set bytes of a Part 10 file."""
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        raise ValueError("not a DICOM Part 10 file")
    (group_length,) = struct.unpack("<L", data[140:144])
    return read_file_meta_info(path), data[144 + group_length :]


@dataclass
class Survey:
    """What `dicomnode doctor` reports: every disagreement between catalog and storage."""

    instances: int = 0
    missing: list[str] = field(default_factory=list)  # catalogued, no file
    size_mismatch: list[tuple[str, int, int]] = field(default_factory=list)  # (path, catalog, disk)
    orphans: list[str] = field(default_factory=list)  # file, no catalog row
    quarantined: list[str] = field(default_factory=list)
    unfinished_deletions: int = 0

    @property
    def healthy(self) -> bool:
        problems = (self.missing, self.size_mismatch, self.orphans, self.quarantined)
        return not any(problems) and not self.unfinished_deletions


def survey(storage: Storage, catalog: Engine) -> Survey:
    """Compare every catalogued instance with its file, and every file with the catalog (a full scan)."""
    found = Survey(unfinished_deletions=len(storage.tombstones()))
    with catalog.connect() as conn:
        rows = conn.execute(select(_instances.c.path, _instances.c.size_bytes).execution_options(yield_per=1000))
        for path, size in rows:
            found.instances += 1
            try:
                on_disk = storage.absolute(path).stat().st_size
            except FileNotFoundError:
                found.missing.append(path)
                continue
            if on_disk != size:
                found.size_mismatch.append((path, size, on_disk))
    found.orphans = list(orphans(storage, catalog))
    found.quarantined = [p.name for p in storage.quarantined()]
    return found
