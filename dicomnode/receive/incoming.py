"""One instance as it arrives: its data set goes straight to a temp file on the storage filesystem.

So a 2 GB instance costs a PDU's worth of memory, not 2 GB, and the size limit or a write error (disk full)
ends the writing at once: the rest of the instance is read and dropped, the temp file is removed, and the
C-STORE is answered 0xA700 instead of the association being aborted.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from contextlib import contextmanager

from dicomnode.dicom import status
from dicomnode.receive.storage import TempFile

Refusal = tuple[int, str]  # (DIMSE status, error comment)


def write_failure(exc: OSError) -> Refusal:
    """The answer to a failed write on the storage filesystem (disk full, file too large, I/O error)."""
    return status.OUT_OF_RESOURCES, f"storage write failed: {exc.strerror}"


class Incoming:
    def __init__(self, temp: TempFile | None, data_offset: int, limit: int, refusal: Refusal | None = None) -> None:
        """`temp` holds the file meta up to `data_offset`; the data set's bytes follow as they are written."""
        self.temp = temp
        self.data_offset = data_offset
        self.limit = limit  # dicom.max_instance_bytes, for the data set as sent
        self.size = 0  # data set bytes received, kept or not
        self.refusal = refusal  # set: everything further is dropped

    @classmethod
    def refused(cls, refusal: Refusal) -> Incoming:
        """Refused before its first byte (bad command UIDs, unknown syntax, no space): nothing is written."""
        return cls(None, 0, 0, refusal)

    def write(self, chunk: bytes | memoryview) -> None:
        """Append received data set bytes; never raises (the answer is decided when the instance is complete)."""
        self.size += len(chunk)
        if self.refusal is not None:
            return
        if self.size > self.limit:
            self._stop((status.OUT_OF_RESOURCES, f"instance exceeds the limit of {self.limit} bytes"))
            return
        try:
            self.temp.write(chunk)  # type: ignore[union-attr]
        except OSError as exc:
            self._stop(write_failure(exc))

    @contextmanager
    def data_set(self) -> Iterator[memoryview]:
        """The received data set, mapped from the temp file (read only; no copy in memory)."""
        assert self.temp is not None and self.temp.fd is not None, "no data set was kept"
        with mmap.mmap(self.temp.fd, 0, access=mmap.ACCESS_READ) as mapped:
            view = memoryview(mapped)[self.data_offset :]
            try:
                yield view
            finally:
                view.release()  # the map cannot close while a view of it exists

    def discard(self) -> None:
        """Remove what was written (a no-op once the file is placed in the archive); later writes are dropped."""
        if self.refusal is None:
            self.refusal = (status.OUT_OF_RESOURCES, "the receipt was ended")
        if self.temp is not None:
            self.temp.discard()

    def _stop(self, refusal: Refusal) -> None:
        self.refusal = refusal
        self.discard()
