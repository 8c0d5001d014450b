"""Who produced a result and the UIDs of what it becomes: one place, derived from the result UID."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from dicomnode.dicom.uids import derived_uid

MANUFACTURER = "dicomnode"
SR_SERIES_NUMBER = 9901
SEG_SERIES_NUMBER = 9902
KEY_IMAGE_SERIES_NUMBER = 9903
PRESENTATION_SERIES_NUMBER = 9904
KEY_OBJECTS_SERIES_NUMBER = 9905
# Cornerstone's tool tag: OHIF offers to hydrate an SR group into an editable tool only when its tracking identifier
# starts with a tool's tag (@cornerstonejs/adapters, MeasurementReport.getAdapterForTrackingIdentifier); our regions
# are rectangles on one slice, which its RectangleROI reads.
HYDRATABLE_REGION_TAG = "Cornerstone3DTools@^0.1.0:RectangleROI"


def software_version() -> str:
    try:
        return version("dicomnode")
    except PackageNotFoundError:  # running from a source tree without installing
        return "0+unknown"


def result_uid(study_instance_uid: str, model: str, model_version: str) -> str:
    """The identity of one model version's result for one study: a re-run replaces it, never adds to it."""
    return derived_uid("result", study_instance_uid, model, model_version)


@dataclass(frozen=True)
class ResultIdentity:
    result_uid: str  # study + model + model version (result_uid above)
    model: str
    model_version: str
    model_uid: str  # changes whenever the weights change: the Device UID

    @classmethod
    def of(cls, study_instance_uid: str, model: str, model_version: str, model_uid: str) -> ResultIdentity:
        return cls(result_uid(study_instance_uid, model, model_version), model, model_version, model_uid)

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

    @property
    def key_image_series_uid(self) -> str:
        return self._uid("key-image-series")

    def key_image_uid(self, index: int) -> str:
        """The Secondary Capture of finding `index`."""
        return self._uid("key-image", str(index))

    @property
    def presentation_series_uid(self) -> str:
        return self._uid("gsps-series")

    def presentation_uid(self, series_uid: str) -> str:
        """The GSPS of an analysed series with findings."""
        return self._uid("gsps", series_uid)

    @property
    def key_objects_series_uid(self) -> str:
        return self._uid("kos-series")

    @property
    def key_objects_uid(self) -> str:
        return self._uid("kos")

    def tracking_uid(self, index: int) -> str:
        """The same in the SR group and the SEG segment of the finding, so a viewer links them."""
        return self._uid("finding", str(index))

    def tracking_id(self, index: int, label: str) -> str:
        """The same spelling for a finding found (its label) and one stated absent (its code meaning): the SEG's
        segment label and the tracking identifier of a group without a region."""
        return f"{label.lower()} {index + 1}"[:64]

    def region_tracking_id(self, index: int, label: str) -> str:
        """The tracking identifier of a finding with a region, the same in the SR group, the SEG segment and the GSPS
        graphic: Cornerstone's tool tag, then the words of tracking_id."""
        return f"{HYDRATABLE_REGION_TAG}:{self.tracking_id(index, label)}"

    @property
    def description(self) -> str:
        return f"AI {self.model} {self.model_version}"[:56]
