"""UID grammar and durable storage."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dicomnode.dicom.uids import InvalidUIDError, is_valid_uid, require_uid
from dicomnode.receive.storage import Storage


@pytest.mark.parametrize("uid", ["0", "1.2.840.10008.1.2.1", "2.25.1" + "0" * 57, "1.0.3"])
def test_valid_uids(uid: str) -> None:
    assert is_valid_uid(uid)


@pytest.mark.parametrize("uid", ["", "1.02", "1..2", ".1", "1.", "1.2.a", "1.2/3", "../1", "1.2 ", "1" * 65, None, 1.2])
def test_invalid_uids(uid: object) -> None:
    assert not is_valid_uid(uid)


def test_invalid_uid_error_names_attribute_not_value() -> None:
    with pytest.raises(InvalidUIDError) as err:
        require_uid("StudyInstanceUID", "SMITH^JOHN")
    assert "StudyInstanceUID" in str(err.value) and "SMITH" not in str(err.value)


def test_write_durably_places_file_and_leaves_no_temp(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    rel = storage.relative_path("1.2", "1.2.3", "1.2.3.4")
    assert rel == "1.2/1.2.3/1.2.3.4.dcm"
    assert storage.write_durably(rel, [b"abc", b"def"]) == 6
    assert (tmp_path / rel).read_bytes() == b"abcdef"
    assert list(storage.tmp_dir.iterdir()) == []


def test_failed_rename_keeps_old_file_and_removes_temp(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    rel = storage.relative_path("1.2", "1.2.3", "1.2.3.4")
    (tmp_path / rel).mkdir(parents=True)  # a directory where the file should go: rename fails
    with pytest.raises(OSError):
        storage.write_durably(rel, [b"x"])
    assert (tmp_path / rel).is_dir()
    assert list(storage.tmp_dir.iterdir()) == []


def test_placing_only_if_absent_keeps_the_first_file_and_removes_the_temp(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    rel = storage.relative_path("1.2", "1.2.3", "1.2.3.4")
    first = storage.open_temp()
    first.write(b"first")
    assert storage.place(first, rel, replace=False) == 5
    second = storage.open_temp()
    second.write(b"second")
    with pytest.raises(FileExistsError):
        storage.place(second, rel, replace=False)
    assert (tmp_path / rel).read_bytes() == b"first"
    assert list(storage.tmp_dir.iterdir()) == []


@pytest.mark.parametrize("lacking", [["renameat2"], ["renameat2", "link"]])
def test_placing_only_if_absent_falls_back_where_the_filesystem_lacks_the_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lacking: list[str]
) -> None:
    # Filesystems without RENAME_NOREPLACE (NFS answers EINVAL) or hard links (vfat answers EPERM) cannot be
    # mounted here: the calls are made to answer so.
    from dicomnode.receive import storage as module

    def no_rename_noreplace(*_: object) -> None:
        raise OSError(errno.EINVAL, "Invalid argument")

    def no_links(*_: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(module, "_rename_noreplace", no_rename_noreplace)
    if "link" in lacking:
        monkeypatch.setattr(os, "link", no_links)
    storage = Storage(tmp_path)
    rel = storage.relative_path("1.2", "1.2.3", "1.2.3.4")
    for content in (b"abc", b"later"):
        temp = storage.open_temp()
        temp.write(content)
        if content == b"abc" or "link" in lacking:  # a plain rename cannot refuse: the later copy replaces
            assert storage.place(temp, rel, replace=False) == len(content)
        else:
            with pytest.raises(FileExistsError):
                storage.place(temp, rel, replace=False)
    assert (tmp_path / rel).read_bytes() == (b"later" if "link" in lacking else b"abc")
    assert list(storage.tmp_dir.iterdir()) == []


def test_relative_path_refuses_bad_uids(tmp_path: Path) -> None:
    with pytest.raises(InvalidUIDError, match="SeriesInstanceUID"):
        Storage(tmp_path).relative_path("1.2", "../..", "1.2.3")


def test_stale_temp_files_are_removed(tmp_path: Path) -> None:
    storage = Storage(tmp_path)
    (storage.tmp_dir / "1-1.part").write_bytes(b"x")
    assert storage.remove_stale_temp_files() == 1
    assert list(storage.tmp_dir.iterdir()) == []
