"""C-FIND against the catalog: a query identifier as SQL, each match as a response identifier (PS3.4 C.2.2.2).

Matching: empty or "*" is universal; UIDs match a backslash-separated list; dates match a value or a range
(A-B, -B, A-); text matches exactly or with the wildcards * and ?, person names case-insensitively. Keys the
catalog does not hold match anything and come back empty, as the standard allows for optional keys. Each
response carries exactly the keys the request asked for. Levels below PATIENT (Patient Root) or STUDY (Study
Root) are answered relationally: every key given, at any level, narrows the matches.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from pydicom.dataset import Dataset
from sqlalchemy import Connection, Select, func, select
from sqlalchemy.sql.elements import ColumnElement

from dicomnode.catalog.schema import Instance, Patient, Series, Study
from dicomnode.errors import DicomnodeError

_patients = Patient.__table__
_studies = Study.__table__
_series = Series.__table__
_instances = Instance.__table__
LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")
MAX_MATCHES = 10_000  # per request: a universal query on a big catalog must not build an unbounded answer


class QueryError(DicomnodeError, ValueError):
    """An identifier that cannot be answered (no or an unknown level)."""


@dataclass(frozen=True)
class Key:
    level: str  # the lowest level it belongs to
    column: ColumnElement | None  # None: not held in the catalog
    kind: str  # uid, date, text, name, number (counts), none


_COUNT = "number"
KEYS: dict[str, Key] = {
    "PatientID": Key("PATIENT", _patients.c.patient_id, "text"),
    "IssuerOfPatientID": Key("PATIENT", _patients.c.issuer_of_patient_id, "text"),
    "PatientName": Key("PATIENT", _patients.c.patient_name, "name"),
    "PatientBirthDate": Key("PATIENT", _patients.c.birth_date, "date"),
    "PatientSex": Key("PATIENT", _patients.c.sex, "text"),
    "NumberOfPatientRelatedStudies": Key("PATIENT", None, _COUNT),
    "NumberOfPatientRelatedSeries": Key("PATIENT", None, _COUNT),
    "NumberOfPatientRelatedInstances": Key("PATIENT", None, _COUNT),
    "StudyInstanceUID": Key("STUDY", _studies.c.study_instance_uid, "uid"),
    "AccessionNumber": Key("STUDY", _studies.c.accession_number, "text"),
    "StudyDate": Key("STUDY", _studies.c.study_date, "date"),
    "StudyDescription": Key("STUDY", _studies.c.study_description, "text"),
    "StudyTime": Key("STUDY", None, "none"),
    "StudyID": Key("STUDY", None, "none"),
    "ReferringPhysicianName": Key("STUDY", None, "none"),
    "ModalitiesInStudy": Key("STUDY", _series.c.modality, "text"),
    "NumberOfStudyRelatedSeries": Key("STUDY", None, _COUNT),
    "NumberOfStudyRelatedInstances": Key("STUDY", None, _COUNT),
    "SeriesInstanceUID": Key("SERIES", _series.c.series_instance_uid, "uid"),
    "Modality": Key("SERIES", _series.c.modality, "text"),
    "SeriesNumber": Key("SERIES", _series.c.series_number, "text"),
    "SeriesDescription": Key("SERIES", _series.c.series_description, "text"),
    "BodyPartExamined": Key("SERIES", _series.c.body_part_examined, "text"),
    "NumberOfSeriesRelatedInstances": Key("SERIES", None, _COUNT),
    "SOPInstanceUID": Key("IMAGE", _instances.c.sop_instance_uid, "uid"),
    "SOPClassUID": Key("IMAGE", _instances.c.sop_class_uid, "uid"),
    "InstanceNumber": Key("IMAGE", _instances.c.instance_number, "text"),
}
# Each level's unique key and the column its rows are told apart by.
_UNIQUE = {
    "PATIENT": _patients.c.id,
    "STUDY": _studies.c.study_instance_uid,
    "SERIES": _series.c.series_instance_uid,
    "IMAGE": _instances.c.sop_instance_uid,
}
_COUNTED = {
    "NumberOfPatientRelatedStudies": _studies.c.study_instance_uid,
    "NumberOfPatientRelatedSeries": _series.c.series_instance_uid,
    "NumberOfPatientRelatedInstances": _instances.c.sop_instance_uid,
    "NumberOfStudyRelatedSeries": _series.c.series_instance_uid,
    "NumberOfStudyRelatedInstances": _instances.c.sop_instance_uid,
    "NumberOfSeriesRelatedInstances": _instances.c.sop_instance_uid,
}
_SKIP = {"QueryRetrieveLevel", "SpecificCharacterSet", "RetrieveAETitle", "InstanceAvailability"}


def level_of(identifier: Dataset) -> str:
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in LEVELS:
        raise QueryError(f"QueryRetrieveLevel must be one of {', '.join(LEVELS)}, got {level or 'nothing'!r}")
    return level


def matches(conn: Connection, identifier: Dataset, retrieve_ae: str) -> Iterator[Dataset]:
    """Every match of the identifier, as the response identifier to send back."""
    level = level_of(identifier)
    depth = LEVELS.index(level)
    asked = [e.keyword for e in identifier if e.keyword and e.keyword not in _SKIP]
    query, _ = _narrowed(identifier)
    shown = [k for k in asked if k in KEYS and KEYS[k].column is not None and LEVELS.index(KEYS[k].level) <= depth]
    counted = [k for k in asked if k in _COUNTED]
    columns = [func.min(KEYS[k].column).label(k) for k in shown if k != "ModalitiesInStudy"]
    columns += [func.count(func.distinct(_COUNTED[k])).label(k) for k in counted]
    rows = conn.execute(
        query.with_only_columns(_UNIQUE[level].label("_unique"), *columns)
        .group_by(_UNIQUE[level])
        .order_by(_UNIQUE[level])
        .limit(MAX_MATCHES)
    ).all()
    modalities = _modalities(conn, [r._unique for r in rows]) if "ModalitiesInStudy" in asked else {}
    for row in rows:
        yield _response(identifier, level, asked, row._mapping, modalities.get(row._unique, []), retrieve_ae)


def _narrowed(identifier: Dataset) -> tuple[Select, bool]:
    """The joined levels narrowed by every key the identifier gives a value that we hold; whether any did. A key of
    a lower level narrows to entries that have such a child; ModalitiesInStudy to studies with any such series."""
    query, narrowed = _base(), False
    for element in identifier:
        key = KEYS.get(element.keyword)
        if key is None or key.column is None:
            continue
        condition = _condition(key, element)
        if condition is None:
            continue
        if element.keyword == "ModalitiesInStudy":
            condition = _studies.c.id.in_(select(_series.c.study_fk).where(condition))
        query, narrowed = query.where(condition), True
    return query, narrowed


def _base() -> Select:
    """Every level joined down to instances: a row per instance, grouped to the level's unique key later."""
    return (
        select(_patients.c.id)
        .select_from(_patients)
        .join(_studies, _studies.c.patient_fk == _patients.c.id)
        .join(_series, _series.c.study_fk == _studies.c.id)
        .join(_instances, _instances.c.series_fk == _series.c.id)
    )


def _condition(key: Key, element) -> ColumnElement[bool] | None:  # noqa: ANN001
    if element is None or element.value is None or element.value == "":
        return None
    column = key.column
    assert column is not None
    if key.kind == "uid":
        values = [str(v).strip() for v in (element.value if element.VM > 1 else [element.value]) if str(v).strip()]
        return column.in_(values) if values else None
    value = "\\".join(str(v) for v in element.value) if element.VM > 1 else str(element.value)
    value = value.strip()
    if value in ("", "*"):
        return None
    if key.kind == "date":
        return _date_condition(column, value)
    if "\\" in value:  # a list of values: any of them
        return column.in_([v.strip() for v in value.split("\\")])
    if key.kind == "name":
        column, value = func.upper(column), value.upper()
    if "*" in value or "?" in value:
        escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return column.like(escaped.replace("*", "%").replace("?", "_"), escape="\\")
    return column == value


def _date_condition(column: ColumnElement, value: str) -> ColumnElement[bool]:
    if "-" not in value:
        return column == value
    low, high = (part.strip() for part in value.split("-", 1))
    if low and high:
        return column.between(low, high)
    return column >= low if low else column <= high


def _modalities(conn: Connection, study_uids: list[str]) -> dict[str, list[str]]:
    rows = conn.execute(
        select(_studies.c.study_instance_uid, _series.c.modality)
        .join(_series, _series.c.study_fk == _studies.c.id)
        .where(_studies.c.study_instance_uid.in_(study_uids), _series.c.modality.is_not(None))
        .distinct()
        .order_by(_studies.c.study_instance_uid, _series.c.modality)
    ).all()
    found: dict[str, list[str]] = {}
    for uid, modality in rows:
        found.setdefault(uid, []).append(modality)
    return found


def _response(identifier: Dataset, level: str, asked: list[str], row, modalities: list[str], retrieve_ae: str):  # noqa: ANN001, ANN202
    response = Dataset()
    response.QueryRetrieveLevel = level
    if "SpecificCharacterSet" in identifier:
        response.SpecificCharacterSet = "ISO_IR 192"  # the catalog holds text as UTF-8
    if "RetrieveAETitle" in identifier:
        response.RetrieveAETitle = retrieve_ae
    if "InstanceAvailability" in identifier:
        response.InstanceAvailability = "ONLINE"
    for keyword in asked:
        value = modalities if keyword == "ModalitiesInStudy" else row.get(keyword)
        setattr(response, keyword, "" if value is None else value)
    return response


@dataclass(frozen=True)
class Stored:
    """An instance a retrieve sends: where it is, and what a presentation context needs to carry it."""

    path: str  # relative to storage
    sop_class_uid: str
    transfer_syntax_uid: str
    study_pk: int


def instances(conn: Connection, identifier: Dataset) -> list[Stored]:
    """Every instance under the matches of a C-MOVE or C-GET identifier (its unique keys, or any keys we hold)."""
    level_of(identifier)
    query, narrowed = _narrowed(identifier)
    if not narrowed:  # a retrieve of everything is a mistake, not a request
        raise QueryError("a retrieve names what it wants: StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID, ...")
    rows = conn.execute(
        query.with_only_columns(
            _instances.c.path, _instances.c.sop_class_uid, _instances.c.transfer_syntax_uid, _studies.c.id
        ).order_by(_studies.c.id, _series.c.id, _instances.c.id)
    ).all()
    return [Stored(*row) for row in rows]
