"""Catalog tables. One row per patient, study (per called AE), series and instance."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

UID = String(64)
AE = String(16)


class Base(DeclarativeBase):
    pass


class StudyState:
    OPEN = "open"  # instances may still arrive
    COMPLETE = "complete"  # quiet for study_quiet_seconds; handed to the dispatcher


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
