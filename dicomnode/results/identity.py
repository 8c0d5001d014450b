"""Who produced a result and the UIDs of what it becomes: one place, derived from the result UID."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from dicomnode.dicom.uids import derived_uid

MANUFACTURER = "dicomnode"
SR_SERIES_NUMBER = 9901
SEG_SERIES_NUMBER = 9902


def software_version() -> str:
    try:
        return version("dicomnode")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


@dataclass(frozen=True)
class ResultIdentity:
    result_uid: str  # study + model + model version (dicomnode.dicom.uids.result_uid)
    model: str
    model_version: str
    model_uid: str  # changes whenever the weights change: the Device UID

    def _uid(self, *parts: str) -> str:
        return derived_uid(self.result_uid, *parts)

    @property
    def sr_series_uid(self) -> str:
        return self._uid("sr-series")

    @property
    def sr_uid(self) -> str:
        return self._uid("sr")

    @property
    def seg_series_uid(self) -> str:
        return self._uid("seg-series")

    def seg_uid(self, series_uid: str) -> str:
        """One SEG per analysed series that has masks."""
        return self._uid("seg", series_uid)

    def tracking_uid(self, index: int) -> str:
        """The same in the SR group and the SEG segment of the finding, so a viewer links them."""
        return self._uid("finding", str(index))

    def tracking_id(self, index: int, label: str) -> str:
        return f"{label} {index + 1}"[:64]

    @property
    def description(self) -> str:
        return f"AI {self.model} {self.model_version}"[:56]
