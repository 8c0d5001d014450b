"""The Query/Retrieve SCP: C-FIND, C-MOVE and C-GET handlers over the catalog and storage (Patient Root and Study
Root), so that a viewer or workstation can pull a study and its AI results from the node.

Only admitted peers reach these handlers (the same allowlist as C-STORE); C-MOVE sends only to peers configured
with a port (`dicom.peers`), never to an address a request names. Every retrieve is an audit act on each study
it sent. Logs carry levels, AE titles and counts, never identifiers (they hold patient data).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from pydicom import dcmread
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import build_context, evt
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from sqlalchemy import Engine

from dicomnode.config.dicom import DicomConfig
from dicomnode.dicom import query, status
from dicomnode.dicom.scu import SEND_AT_ONCE
from dicomnode.ops import audit
from dicomnode.receive.storage import Storage

log = logging.getLogger(__name__)
QUERY_RETRIEVE_MODELS = (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelMove,
    PatientRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelGet,
)
MAX_CONTEXTS = 128  # presentation contexts one association may propose


class Retrieval:
    """What the Q/R handlers need: the catalog, the storage and where C-MOVE destinations are."""

    def __init__(self, catalog: Engine, storage: Storage, dicom: DicomConfig) -> None:
        self.catalog = catalog
        self.storage = storage
        self.dicom = dicom

    def handlers(self) -> list[tuple[Any, Any, list[Any]]]:
        return [
            (evt.EVT_C_FIND, handle_find, [self]),
            (evt.EVT_C_MOVE, handle_move, [self]),
            (evt.EVT_C_GET, handle_get, [self]),
        ]


def handle_find(event: evt.Event, retrieval: Retrieval) -> Iterator[tuple[int, Any]]:
    requestor = event.assoc.requestor.ae_title
    try:
        identifier = event.identifier
        level = query.level_of(identifier)
        with retrieval.catalog.connect() as conn:
            found = list(query.matches(conn, identifier, retrieval.dicom.ae_title))
    except query.QueryError as exc:
        log.warning("C-FIND from %s refused: %s", requestor, exc)
        yield status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, None
        return
    except Exception as exc:  # an undecodable identifier, the catalog: answer, never drop the request
        log.error("C-FIND from %s failed: %s", requestor, type(exc).__name__)
        yield status.UNABLE_TO_PROCESS, None
        return
    log.info("C-FIND from %s level=%s: %d matches", requestor, level, len(found))
    for response in found:
        if event.is_cancelled:
            yield status.CANCELLED, None
            return
        yield status.PENDING, response


def handle_move(event: evt.Event, retrieval: Retrieval) -> Iterator[Any]:
    requestor, destination = event.assoc.requestor.ae_title, event.move_destination
    address = retrieval.dicom.move_destination(destination)
    if address is None:
        log.warning("C-MOVE from %s to %s refused: not a peer with a port in dicom.peers", requestor, destination)
        yield None, None  # pynetdicom answers 0xA801, move destination unknown
        return
    stored = _instances(event, retrieval, "C-MOVE")
    # pynetdicom associates before it reads a status: a refusal needs a context too (Verification)
    contexts = _contexts(stored) if stored else [build_context(Verification)]
    yield (*address, {"contexts": contexts, "evt_handlers": SEND_AT_ONCE})
    if stored is None:
        yield from _refused()
        return
    yield from _send(event, retrieval, stored, requestor, f"C-MOVE to {destination}")


def handle_get(event: evt.Event, retrieval: Retrieval) -> Iterator[Any]:
    stored = _instances(event, retrieval, "C-GET")
    if stored is None:
        yield from _refused()
        return
    yield from _send(event, retrieval, stored, event.assoc.requestor.ae_title, "C-GET")


def _refused() -> Iterator[Any]:
    """pynetdicom reads the sub-operation count before any status: one announced, then the failure."""
    yield 1
    yield status.IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, None


def _instances(event: evt.Event, retrieval: Retrieval, what: str) -> list[query.Stored] | None:
    try:
        with retrieval.catalog.connect() as conn:
            return query.instances(conn, event.identifier)
    except query.QueryError as exc:
        log.warning("%s from %s refused: %s", what, event.assoc.requestor.ae_title, exc)
        return None


def _send(
    event: evt.Event, retrieval: Retrieval, stored: list[query.Stored], requestor: str, act: str
) -> Iterator[Any]:
    yield len(stored)
    sent: Counter[int] = Counter()
    for item in stored:
        if event.is_cancelled:
            yield status.CANCELLED, None
            break
        try:
            dataset = dcmread(retrieval.storage.absolute(item.path))
        except OSError as exc:  # gone from storage: a failed sub-operation, the others still go
            log.error("%s: instance missing from storage (%s)", act, type(exc).__name__)
            continue
        sent[item.study_pk] += 1
        yield status.PENDING, dataset
    _audit(retrieval, stored, sent, requestor, act)


def _audit(retrieval: Retrieval, stored: list[query.Stored], sent: Counter[int], requestor: str, act: str) -> None:
    asked = Counter(item.study_pk for item in stored)
    with retrieval.catalog.begin() as conn:
        for study_pk, count in asked.items():
            audit.record(conn, study_pk, requestor, "retrieved", f"{act}: {sent[study_pk]} of {count} instances")
    log.info("%s by %s: %d instances of %d studies", act, requestor, sum(sent.values()), len(asked))


def _contexts(stored: list[query.Stored]) -> list:
    """One presentation context per SOP class and stored transfer syntax (plus the uncompressed ones)."""
    pairs = sorted({(s.sop_class_uid, s.transfer_syntax_uid) for s in stored})
    contexts = []
    for sop_class, syntax in pairs[:MAX_CONTEXTS]:
        syntaxes = list(dict.fromkeys([syntax, ExplicitVRLittleEndian, ImplicitVRLittleEndian]))
        contexts.append(build_context(sop_class, syntaxes))
    return contexts
