"""Results to the RIS over HL7 v2: the HL7 outbox and its sender.

One row per message (ORU^R01 result; ORM^O01 priority change with `hl7.priority_update`) and mllp:// destination,
built and armed in the transaction that stores the result (or records the failure or the scope refusal); its
transitions are the shared outbox's (export/outbox.py). The receiver's ACK decides: AA (or CA) sent; AE (CE)
retried with backoff; AR (CR) dead at once (the receiver refuses the message as it is); no answer within
`hl7.ack_timeout_s`, or no connection, retried.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Hl7Message, Patient, Study, StudyPatient
from dicomnode.catalog.states import OutboxState
from dicomnode.config.hl7 import Hl7Config
from dicomnode.export import outbox
from dicomnode.hl7 import messages
from dicomnode.hl7.mllp import Endpoint, exchange, is_hl7_destination
from dicomnode.hl7.orders import order_for_study
from dicomnode.hl7.results import AIReport, ReportContext, oru, priority_change
from dicomnode.ops import audit
from dicomnode.ops.metrics import NodeMetrics
from dicomnode.routing.priority import PriorityClass

log = logging.getLogger(__name__)
_messages = Hl7Message.__table__
_studies = Study.__table__
_study_patients = StudyPatient.__table__
_patients = Patient.__table__
ORU, ORM = "ORU^R01", "ORM^O01"
_SENT, _RETRY, _DEAD = {"AA", "CA"}, {"AE", "CE"}, {"AR", "CR"}


def report_context(conn: Connection, study_pk: int, config: Hl7Config) -> ReportContext:
    study = conn.execute(
        select(_studies.c.study_instance_uid, _studies.c.accession_number, _studies.c.patient_fk).where(
            _studies.c.id == study_pk
        )
    ).one()
    # the patient as the study's own instances name it, else as the catalog's patient row does
    patient = (
        conn.execute(
            select(_study_patients.c.patient_id, _study_patients.c.patient_name).where(
                _study_patients.c.study_fk == study_pk
            )
        ).first()
        or conn.execute(
            select(_patients.c.patient_id, _patients.c.patient_name).where(_patients.c.id == study.patient_fk)
        ).first()
    )
    order = order_for_study(conn, study_pk)
    return ReportContext(
        study_instance_uid=study.study_instance_uid,
        accession_number=study.accession_number or "",
        patient_id=(order.patient_id if order else None) or (patient.patient_id if patient else ""),
        patient_name=(order.patient_name if order else None) or (patient.patient_name if patient else "") or "",
        placer_order_number=(order.placer_order_number if order else None) or "",
        filler_order_number=(order.filler_order_number if order else None) or "",
        procedure_code=(order.procedure_code if order else None) or "",
        procedure_text=(order.procedure_text if order else None) or "",
        application=config.sending_application,
        facility=config.sending_facility,
    )


def enqueue(
    conn: Connection, study_pk: int, key: str, report: AIReport, destinations: list[str], config: Hl7Config
) -> int:
    """Arm the ORU (and, when asked for and earned, the priority change) to each mllp:// destination; a re-run
    re-arms the same rows. `key`: the result's UID, or the job's status key. The number armed."""
    targets = [d for d in destinations if is_hl7_destination(d)]
    if not targets:
        return 0
    context = report_context(conn, study_pk, config)
    raise_to = _priority_raise(report, config)
    armed = 0
    for destination in targets:
        armed += _arm(conn, study_pk, key, ORU, destination, lambda cid: oru(context, report, cid))
        if raise_to is not None:
            build = lambda cid: priority_change(context, PriorityClass.STAT, raise_to, cid)  # noqa: E731
            armed += _arm(conn, study_pk, key, ORM, destination, build)
    return armed


def _priority_raise(report: AIReport, config: Hl7Config) -> str | None:
    """The reason to raise the order to STAT, or None: a flagged finding whose probability x urgency (the
    worklist's AI urgency) reaches priority_update_min_urgency."""
    if not config.priority_update or report.status != "flagged":
        return None
    top = max(report.findings, key=lambda f: f["probability"] * f["urgency"])
    if top["probability"] * top["urgency"] < config.priority_update_min_urgency:
        return None
    return f"AI {report.model} {report.model_version}: {top['label']} p={top['probability']:.2f}"


def _arm(conn: Connection, study_pk: int, key: str, kind: str, destination: str, build) -> int:  # noqa: ANN001
    control_id = ("R" if kind == ORU else "P") + hashlib.sha1(f"{key}|{kind}|{destination}".encode()).hexdigest()[:19]
    now = utcnow()
    rearm = {**outbox.rearmed(now), "message": build(control_id)}
    stmt = insert_for(conn.dialect.name, _messages).values(
        study_fk=study_pk,
        result_uid=key,
        kind=kind,
        destination=destination,
        control_id=control_id,
        created_at=now,
        **rearm,
    )
    conn.execute(stmt.on_conflict_do_update(index_elements=["result_uid", "kind", "destination"], set_=rearm))
    return 1


@dataclass(frozen=True)
class Delivery:
    id: int
    study_pk: int
    kind: str
    destination: str
    control_id: str
    message: str
    attempt: int


class Hl7Sender(outbox.OutboxSender):
    def __init__(self, catalog: Engine, config: Hl7Config, tls: ssl.SSLContext, metrics: NodeMetrics) -> None:
        super().__init__("hl7-sender", catalog, _messages, config, config.ack_timeout_s + 5)
        self._config = config
        self._tls = tls
        self._metrics = metrics

    def send_due(self) -> int:
        c = _messages.c
        columns = [c.id, c.study_fk, c.kind, c.destination, c.control_id, c.message, c.attempts]
        with self._catalog.begin() as conn:
            due = [Delivery(*row) for row in outbox.claim_due(conn, _messages, columns)]
        for delivery in due:
            code, error = self._deliver(delivery)
            self._metrics.hl7_messages.labels("out", delivery.kind, code or "unanswered").inc()
            with self._catalog.begin() as conn:
                if code in _SENT:
                    outbox.mark_sent(conn, _messages, delivery.id, 0)
                    detail = f"{delivery.kind} control_id={delivery.control_id} (attempt {delivery.attempt})"
                    audit.record(conn, delivery.study_pk, delivery.destination, "reported", detail)
                    log.info(
                        "hl7 %s control_id=%s sent to %s", delivery.kind, delivery.control_id, delivery.destination
                    )
                    continue
                state = outbox.record_failure(
                    conn, _messages, delivery.id, delivery.attempt, error, None, code in _DEAD, self._config
                )
            log.log(
                logging.ERROR if state == OutboxState.DEAD else logging.WARNING,
                "hl7 %s control_id=%s to %s attempt=%d %s: %s",
                delivery.kind,
                delivery.control_id,
                delivery.destination,
                delivery.attempt,
                "dead" if state == OutboxState.DEAD else "will retry",
                error,
            )
        return len(due)

    def _deliver(self, delivery: Delivery) -> tuple[str | None, str]:
        """(ACK code or None when unanswered, what went wrong)."""
        try:
            answer = exchange(
                Endpoint.parse(delivery.destination),
                delivery.message.encode(),
                self._config.ack_timeout_s,
                self._tls,
            )
        except (OSError, ValueError) as exc:  # refused, unreachable, timed out, broken framing
            return None, f"not delivered (receiver unreachable or no answer): {type(exc).__name__}: {exc}"
        code, text = messages.ack_of(answer, delivery.control_id)
        if code in _SENT:
            return code, ""
        if code in _RETRY | _DEAD:
            return code, f"receiver answered {code}" + (f": {text}" if text else "")
        return None, f"receiver answered something that is not an ACK to this message ({text})"


@dataclass(frozen=True)
class Hl7Summary:
    id: int
    study_instance_uid: str
    kind: str
    control_id: str
    destination: str
    state: str
    attempts: int
    not_before: datetime
    last_error: str | None
    sent_at: datetime | None


def list_messages(conn: Connection, state: str | None = None, limit: int = 500) -> list[Hl7Summary]:
    m = _messages.c
    query = (
        select(
            m.id,
            _studies.c.study_instance_uid,
            m.kind,
            m.control_id,
            m.destination,
            m.state,
            m.attempts,
            m.not_before,
            m.last_error,
            m.sent_at,
        )
        .join(_studies, _studies.c.id == m.study_fk)
        .order_by(m.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(m.state == state)
    return [Hl7Summary(*row) for row in conn.execute(query)]


def retry_dead(conn: Connection, message_id: int) -> bool:
    return outbox.retry_dead(conn, _messages, message_id)
