"""Catalog tables. One row per patient, study (per called AE), series and instance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dicomnode.catalog.states import StudyState

UID = String(64)
AE = String(16)


class Base(DeclarativeBase):
    pass


class Patient(Base):
    __tablename__ = "patients"
    __table_args__ = (UniqueConstraint("patient_id", "issuer_of_patient_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str | None] = mapped_column(String(324))
    birth_date: Mapped[str | None] = mapped_column(String(8))
    sex: Mapped[str | None] = mapped_column(String(16))


class Study(Base):
    __tablename__ = "studies"
    __table_args__ = (UniqueConstraint("called_ae", "study_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    called_ae: Mapped[str] = mapped_column(AE)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    patient_fk: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    accession_number: Mapped[str | None] = mapped_column(String(16))
    study_date: Mapped[str | None] = mapped_column(String(8))
    study_description: Mapped[str | None] = mapped_column(String(64))
    requested_procedure_priority: Mapped[str | None] = mapped_column(String(16))
    reason_for_requested_procedure: Mapped[str | None] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), index=True, default=StudyState.OPEN)
    first_received_at: Mapped[datetime] = mapped_column(DateTime)
    last_received_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    completion_count: Mapped[int] = mapped_column(Integer, default=0)
    analysis: Mapped[str | None] = mapped_column(String(16))  # StudyAnalysis, set at completion


class StudyPatient(Base):
    """The patient as the study's own instances name it (the first instance that carried each value). The
    worklist shows this: a newer study with the same PatientID and another name never relabels this one."""

    __tablename__ = "study_patients"

    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    issuer_of_patient_id: Mapped[str] = mapped_column(String(64), default="")
    patient_name: Mapped[str | None] = mapped_column(String(324))
    birth_date: Mapped[str | None] = mapped_column(String(8))
    sex: Mapped[str | None] = mapped_column(String(16))


class Series(Base):
    __tablename__ = "series"
    __table_args__ = (UniqueConstraint("study_fk", "series_instance_uid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(UID)
    modality: Mapped[str | None] = mapped_column(String(16))
    body_part_examined: Mapped[str | None] = mapped_column(String(64))
    series_description: Mapped[str | None] = mapped_column(String(64))
    series_number: Mapped[str | None] = mapped_column(String(12))
    station_name: Mapped[str | None] = mapped_column(String(16))


class Instance(Base):
    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_fk: Mapped[int] = mapped_column(ForeignKey("series.id"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(UID, unique=True)
    sop_class_uid: Mapped[str] = mapped_column(UID)
    transfer_syntax_uid: Mapped[str] = mapped_column(UID)
    instance_number: Mapped[str | None] = mapped_column(String(12))
    path: Mapped[str] = mapped_column(String(300))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    calling_ae: Mapped[str] = mapped_column(AE)
    called_ae: Mapped[str] = mapped_column(AE)
    peer_address: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime)


class Job(Base):
    """One model run over a study: the source of truth for where the work stands."""

    __tablename__ = "jobs"
    # the monitor's window per model, covering what it counts (ops/monitoring/figures.py)
    __table_args__ = (
        UniqueConstraint("study_fk", "model"),
        Index("ix_jobs_model_finished", "model", "finished_at", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer)  # PriorityClass value; 0 first
    series_uids: Mapped[list] = mapped_column(JSON)  # the series the routing rules matched
    destinations: Mapped[list] = mapped_column(JSON)  # AE@HOST:PORT for the results
    rules: Mapped[list] = mapped_column(JSON)  # names of the rules that asked for this job
    state: Mapped[str] = mapped_column(String(16), index=True)
    generation: Mapped[int] = mapped_column(Integer)  # the study's completion_count it was made for
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    not_before: Mapped[datetime] = mapped_column(DateTime)  # retry backoff
    enqueued_at: Mapped[datetime | None] = mapped_column(DateTime)  # None: not (or no longer) on a queue
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    worker: Mapped[str | None] = mapped_column(String(128))  # host:pid of the current or last run
    run_token: Mapped[str | None] = mapped_column(String(32))  # only the current claim may finish the job
    model_version: Mapped[str | None] = mapped_column(String(64))
    timings: Mapped[dict | None] = mapped_column(JSON)  # seconds per stage of the last run


class Export(Base):
    """The outbox: one instance to one destination. Re-running a result re-arms its rows (same SOP UID)."""

    __tablename__ = "exports"
    __table_args__ = (UniqueConstraint("sop_instance_uid", "destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_uid: Mapped[str] = mapped_column(UID)
    sop_instance_uid: Mapped[str] = mapped_column(UID)
    path: Mapped[str] = mapped_column(String(300))  # relative to storage
    destination: Mapped[str] = mapped_column(String(300))  # AE@HOST:PORT
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)  # says whether the peer was down or answered a failure
    last_status: Mapped[int | None] = mapped_column(Integer)  # DIMSE status of the last answer
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class Result(Base):
    """A model's findings for a study; re-running replaces it in place (same deterministic UID)."""

    __tablename__ = "results"
    __table_args__ = (
        UniqueConstraint("study_fk", "model", "model_version"),
        # the monitor's window, covering the scores it counts (ops/monitoring/figures.py)
        Index("ix_results_version_updated", "model", "model_version", "updated_at", "max_probability"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    result_uid: Mapped[str] = mapped_column(UID, unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    job_fk: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    model_uid: Mapped[str] = mapped_column(UID)  # changes whenever the weights change (Device UID in the SR)
    # [{series_uid, slice_uids, label, code, probability, bbox, centre, measurements}], see models/findings.py
    findings: Mapped[list] = mapped_column(JSON)
    max_probability: Mapped[float] = mapped_column(Float)  # of the findings; 0 when there are none
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    run_count: Mapped[int] = mapped_column(Integer, default=1)  # times this result was (re)written


class WorkItem(Base):
    """A completed study on the reading worklist. Its rank is computed when read (dicomnode/worklist/order.py)."""

    __tablename__ = "worklist_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), unique=True)
    workitem_uid: Mapped[str] = mapped_column(UID, unique=True)  # UPS SOP Instance UID, derived from the study
    state: Mapped[str] = mapped_column(String(16), index=True)  # WorkItemState (catalog/states.py)
    priority: Mapped[str] = mapped_column(String(8))  # PriorityClass name
    arrived_at: Mapped[datetime] = mapped_column(DateTime)  # the study's first instance
    arrived_s: Mapped[float] = mapped_column(Float)  # the same as POSIX seconds, for ordering in SQL
    modalities: Mapped[str] = mapped_column(String(64))  # backslash-separated, as DICOM multi-values
    ai_urgency: Mapped[float] = mapped_column(Float, default=0.0)  # max(probability x urgency) over flags
    # [{label, probability, urgency, model, model_version, result_uid}], one per flagged finding
    flags: Mapped[list] = mapped_column(JSON, default=list)
    transaction_uid: Mapped[str | None] = mapped_column(UID)  # UPS Transaction UID of the current claim
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # reader token name
    claimed_at: Mapped[datetime | None] = mapped_column(DateTime)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime)  # completed or canceled
    overdue_since: Mapped[datetime | None] = mapped_column(DateTime)  # set when its jump to the top was recorded
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class WorkItemEvent(Base):
    """The item's history: every rank change it made (when, old and new rank, why) and every state change."""

    __tablename__ = "worklist_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_fk: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"), index=True)
    at: Mapped[datetime] = mapped_column(DateTime)
    event: Mapped[str] = mapped_column(String(16))  # created, ai, overdue, claimed, released, completed, canceled
    old_rank: Mapped[int | None] = mapped_column(Integer)  # None: not on the worklist before
    new_rank: Mapped[int | None] = mapped_column(Integer)  # None: left the worklist
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(64))  # reader token name, model, or the node


class Feedback(Base):
    """A reader's assessment of one AI flag (the IHE AI Result Assessment idea): agree, disagree or unsure, with an
    optional comment. One per reader, flag and result; a changed mind replaces it (the item's history keeps both)."""

    __tablename__ = "ai_feedback"
    __table_args__ = (UniqueConstraint("result_uid", "label", "reader"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    item_fk: Mapped[int] = mapped_column(ForeignKey("worklist_items.id"), index=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_uid: Mapped[str] = mapped_column(UID)
    label: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))  # worklist/feedback.py Verdict
    comment: Mapped[str | None] = mapped_column(Text)
    reader: Mapped[str] = mapped_column(String(64))  # reader token name
    at: Mapped[datetime] = mapped_column(DateTime)


class Notification(Base):
    """The webhook outbox: one flagged finding to one URL (same transitions as exports, dicomnode/outbox.py)."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("result_uid", "label", "url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_uid: Mapped[str] = mapped_column(UID)
    label: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(500))
    payload: Mapped[dict] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)  # OutboxState values
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)  # HTTP status of the last answer
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class AuditEvent(Base):
    """Who or what touched a study (dicomnode/audit.py). Keyed by the study's UID, not its row: it outlives
    the study when retention deletes it."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_instance_uid: Mapped[str] = mapped_column(UID, index=True)
    called_ae: Mapped[str] = mapped_column(AE)
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128))  # calling AE, model + version, destination, reader token name
    action: Mapped[str] = mapped_column(String(16))  # received, analysed, exported, notified, claimed, ..., deleted
    detail: Mapped[str] = mapped_column(Text)


class InputSummary(Base):
    """What one analysis run was given, in a few numbers (headers and intensities of the analysed volume): the
    input-drift monitor compares these against a baseline window (dicomnode/ops/monitoring). No patient data."""

    __tablename__ = "input_summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_fk: Mapped[int] = mapped_column(ForeignKey("jobs.id"), unique=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    model: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime, index=True)
    features: Mapped[dict] = mapped_column(JSON)  # dicomnode/ops/monitoring/inputs.py FEATURES


class ModelAlert(Base):
    """A monitored figure of a model version past its threshold; open until the figure is back (cleared_at)."""

    __tablename__ = "model_alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(64), index=True)
    model_version: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(64))  # e.g. "positive rate", "drift: slice_thickness"
    value: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    detail: Mapped[str] = mapped_column(Text)
    raised_at: Mapped[datetime] = mapped_column(DateTime)
    cleared_at: Mapped[datetime | None] = mapped_column(DateTime)


class Order(Base):
    """An imaging order from the RIS (HL7 ORM^O01 / OMI^O23, dicomnode/hl7/orders.py), matched to studies by
    accession number. Holds patient data, as the studies do; none of it is ever logged."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    accession_number: Mapped[str] = mapped_column(String(64), unique=True)
    placer_order_number: Mapped[str | None] = mapped_column(String(64))
    filler_order_number: Mapped[str | None] = mapped_column(String(64))
    priority: Mapped[str | None] = mapped_column(String(16))  # as Requested Procedure Priority: STAT, HIGH, ...
    hl7_priority: Mapped[str | None] = mapped_column(String(16))  # the code as sent (HL7 table 0027)
    procedure_code: Mapped[str | None] = mapped_column(String(64))
    procedure_text: Mapped[str | None] = mapped_column(String(200))
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(324))
    ordering_provider: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))  # OrderStatus (catalog/states.py)
    sender: Mapped[str] = mapped_column(String(200))  # MSH-3^MSH-4 of the last message
    control_id: Mapped[str] = mapped_column(String(64))  # MSH-10 of the last message
    received_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Hl7Message(Base):
    """The HL7 outbox: one message (ORU^R01 result, ORM^O01 priority change) to one mllp:// destination, built
    when armed (same transitions as exports, export/outbox.py). A re-run of the result re-arms it."""

    __tablename__ = "hl7_messages"
    __table_args__ = (UniqueConstraint("result_uid", "kind", "destination"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_fk: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    result_uid: Mapped[str] = mapped_column(UID)  # or the job's key when the analysis failed or was out of scope
    kind: Mapped[str] = mapped_column(String(16))  # ORU^R01, ORM^O01
    destination: Mapped[str] = mapped_column(String(300))  # mllp://HOST:PORT or mllps://HOST:PORT
    control_id: Mapped[str] = mapped_column(String(20))  # MSH-10
    message: Mapped[str] = mapped_column(Text)  # the ER7 text, segments separated by \r
    state: Mapped[str] = mapped_column(String(16), index=True)  # OutboxState values
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime] = mapped_column(DateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_status: Mapped[int | None] = mapped_column(Integer)  # unused: an ACK's code is in last_error
    created_at: Mapped[datetime] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
