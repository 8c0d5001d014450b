"""Instance storage: where an instance lives, and how its bytes become durable.

Layout: <root>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm.
Temporary files live in <root>/.tmp, on the same filesystem, so the final step
is a rename. Only UIDs that passed `dicomnode.dicom.uids` become path components.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import itertools
import os
import shutil
from pathlib import Path

from dicomnode.dicom.uids import require_uid

TMP_DIR_NAME = ".tmp"
QUARANTINE_DIR_NAME = ".quarantine"  # files found without a catalog row that could not be indexed
DELETING_DIR_NAME = ".deleting"  # tombstones of deletions in progress (see receive/reconcile.py)
BELOW_FLOOR = "storage below its free-space floor"


class Storage:
    def __init__(self, root: Path, min_free_bytes: int = 0) -> None:
        self.root = root.resolve()
        self.min_free_bytes = min_free_bytes  # storage.min_free_bytes: below it, nothing new is accepted
        self.tmp_dir = self.root / TMP_DIR_NAME
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.quarantine_dir = self.root / QUARANTINE_DIR_NAME
        self.deleting_dir = self.root / DELETING_DIR_NAME

    def relative_path(self, study_uid: str, series_uid: str, sop_uid: str) -> str:
        """The catalog's path for an instance, relative to the storage root."""
        return "/".join(
            (
                require_uid("StudyInstanceUID", study_uid),
                require_uid("SeriesInstanceUID", series_uid),
                require_uid("SOPInstanceUID", sop_uid) + ".dcm",
            )
        )

    def absolute(self, relative_path: str) -> Path:
        return self.root / relative_path

    def write_durably(self, relative_path: str, chunks: list[bytes]) -> int:
        """Write `chunks` to `relative_path` so that it survives a power cut; return its size.

        temp file -> fsync -> rename into place -> fsync the directory. On any
        error the temp file is removed and the OSError propagates; a previous
        file at the destination is left untouched.
        """
        temp = self.open_temp()
        try:
            for chunk in chunks:
                temp.write(chunk)
        except BaseException:
            temp.discard()
            raise
        return self.place(temp, relative_path)

    def open_temp(self) -> TempFile:
        """A new file in the storage's temp folder, on the same filesystem: `place` renames it into the archive."""
        return TempFile(*_mkstemp(self.tmp_dir))

    def place(self, temp: TempFile, relative_path: str, replace: bool = True) -> int:
        """Make a written temp file durable at `relative_path` (fsync, rename, fsync the directory); its size.
        `replace=False`: only if nothing is there yet (a rename that refuses to replace, or a hard link: two writers
        of one name cannot both succeed), else FileExistsError.

        On any error the temp file is removed and the OSError propagates; a previous file at the destination is
        left untouched."""
        final = self.root / relative_path
        linked = False
        try:
            self._make_dirs_durably(final.parent)
            temp.sync_and_close()
            if replace:
                os.replace(temp.path, final)
            else:
                linked = _place_if_absent(temp.path, final)
        except BaseException:
            temp.discard()
            raise
        temp.placed = True
        if linked:  # placed by a hard link: the temp name remains
            with contextlib.suppress(OSError):  # a name left in .tmp is removed at the next start
                os.unlink(temp.path)
        _fsync_dir(final.parent)
        return temp.size

    def remove_stale_temp_files(self) -> int:
        """Delete temp files left by a crash; nothing in .tmp was ever acknowledged."""
        removed = 0
        for entry in self.tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
        return removed

    def quarantine(self, relative_path: str) -> Path:
        """Move a file out of the archive into the quarantine folder, where `dicomnode doctor` lists it."""
        self.quarantine_dir.mkdir(exist_ok=True)
        target = self.quarantine_dir / relative_path.replace("/", "__")
        os.replace(self.root / relative_path, target)
        _fsync_dir(self.quarantine_dir)
        return target

    def quarantined(self) -> list[Path]:
        return sorted(self.quarantine_dir.iterdir()) if self.quarantine_dir.is_dir() else []

    def write_tombstone(self, name: str, relative_paths: list[str]) -> Path:
        """Durably record that these files are about to be deleted (before the catalog forgets them)."""
        relative = f"{DELETING_DIR_NAME}/{name}.paths"
        self.write_durably(relative, ["\n".join(relative_paths).encode()])
        return self.absolute(relative)

    def tombstones(self) -> list[tuple[Path, list[str]]]:
        if not self.deleting_dir.is_dir():
            return []
        return [(t, [p for p in t.read_text().split("\n") if p]) for t in sorted(self.deleting_dir.glob("*.paths"))]

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.root).free

    def below_floor(self) -> bool:
        """The free-space rule: associations and instances are refused while this holds."""
        return self.free_bytes() < self.min_free_bytes

    def _make_dirs_durably(self, directory: Path) -> None:
        if directory.is_dir():
            return
        missing: list[Path] = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir()
            _fsync_dir(new.parent)


class TempFile:
    """A file being written in the storage's temp folder; nothing in it was ever acknowledged."""

    def __init__(self, fd: int, path: str) -> None:
        self.fd: int | None = fd
        self.path = path
        self.size = 0
        self.placed = False  # renamed into the archive: no longer ours to remove

    def write(self, data: bytes | memoryview) -> None:
        assert self.fd is not None, "temp file already closed"
        self.size += _write_all(self.fd, data)

    def sync_and_close(self) -> None:
        assert self.fd is not None, "temp file already closed"
        fd, self.fd = self.fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self) -> None:
        """Close and remove it; never raises (it is called on error paths)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
        if not self.placed:
            with contextlib.suppress(OSError):
                os.unlink(self.path)


def _write_all(fd: int, data: bytes | memoryview) -> int:
    # os.write may write less than asked (e.g. at a file-size limit) without
    # raising; the next call then raises. Never take a short write for success.
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    return len(data)


_names = itertools.count()


def _mkstemp(directory: Path) -> tuple[int, str]:
    # tempfile.mkstemp is safe but slow (random names); a pid+counter name in
    # our private directory is unique (next() on a count is atomic under the
    # GIL), and O_EXCL keeps it honest.
    while True:
        name = os.path.join(directory, f"{os.getpid()}-{next(_names)}.part")
        try:
            return os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o640), name  # RDWR: ingest maps it to check it
        except FileExistsError:
            continue


def _place_if_absent(source: str, target: Path) -> bool:
    """Move `source` to `target` unless `target` exists (FileExistsError). One rename that refuses to replace
    (Linux renameat2 RENAME_NOREPLACE: ext4, xfs, btrfs, tmpfs); where the kernel or filesystem lacks it, a hard
    link (True: the caller removes the temp name); without hard links either (vfat answers EPERM), a plain rename."""
    try:
        _rename_noreplace(source, target)
        return False
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_RENAME_NOREPLACE:
            raise
    try:
        os.link(source, target)
        return True
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in _NO_HARD_LINKS:
            raise
        os.replace(source, target)
        return False


def _rename_noreplace(source: str, target: Path) -> None:
    if _renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 not in this C library")
    if _renameat2(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), _RENAME_NOREPLACE) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(target))


_libc = ctypes.CDLL(None, use_errno=True)
_renameat2 = getattr(_libc, "renameat2", None)  # glibc 2.28+
if _renameat2 is not None:
    _renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_AT_FDCWD, _RENAME_NOREPLACE = -100, 1
_NO_RENAME_NOREPLACE = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP}
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP}


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
