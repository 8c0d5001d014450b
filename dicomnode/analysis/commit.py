"""The transactions that end a job. A finished job commits its SR/SEG stored in the study, the result row, the
exports armed, the worklist item flagged (and its webhooks armed), the audit act and the job marked done, all or
nothing: a run that lost its claim rolls all of it back. A job that fails, or that the scope gate refuses,
commits its new state with the audit act and, when it is final, an entry in the worklist item's history."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pydicom import Dataset
from sqlalchemy import Connection, Engine

from dicomnode.catalog.states import JobState
from dicomnode.config.settings import Settings
from dicomnode.dicom.uids import derived_uid
from dicomnode.export import dicom as dicom_export
from dicomnode.export import hl7 as hl7_export
from dicomnode.hl7.mllp import is_hl7_destination
from dicomnode.hl7.results import AIReport
from dicomnode.jobs import lifecycle as jobs
from dicomnode.ops import audit
from dicomnode.ops.monitoring.inputs import save_inputs
from dicomnode.receive.storage import Storage
from dicomnode.results.identity import ResultIdentity
from dicomnode.results.rows import save_result
from dicomnode.results.store import store_instances
from dicomnode.worklist import items
from dicomnode.worklist.flags import record_result


@dataclass
class Timings:
    """Seconds per stage of one run, as the job row keeps them: queued_s, load_s, infer_s, encode_s, store_s,
    total_s."""

    queued_s: float
    stages: dict[str, float] = field(default_factory=dict)
    _start: float = field(default_factory=time.perf_counter)
    _last: float = 0.0

    def mark(self, stage: str) -> None:
        """The stage named `stage` (e.g. "load_s") ended now."""
        now = time.perf_counter()
        self.stages[stage] = now - (self._last or self._start)
        self._last = now

    def finished(self) -> dict[str, float]:
        self.mark("store_s")
        return {"queued_s": self.queued_s, **self.stages, "total_s": self._last - self._start}


@dataclass(frozen=True)
class FinishedJob:
    claim: jobs.Claim
    identity: ResultIdentity
    instances: list[Dataset]  # encoded SR and SEG
    findings: list[dict[str, Any]]  # the result's records (models/findings.py, with series and slice UIDs)
    urgency: dict[str, float]  # the manifest's, per finding label
    inputs: dict[str, Any] | None = None  # what the run was given (ops/monitoring/inputs.py), for drift monitoring


def commit_result(
    catalog: Engine, storage: Storage, settings: Settings, job: FinishedJob, timings: Timings
) -> dict[str, float]:
    """Commit everything the job produced and return its timings; raise jobs.LostClaim (and commit nothing)
    when its claim was lost."""
    claim, identity = job.claim, job.identity
    who = f"{identity.model} {identity.model_version}"
    with catalog.begin() as conn:
        _store_and_send(conn, storage, settings, claim, identity.result_uid, job.instances)
        save_result(conn, study_pk=claim.study_pk, job_id=claim.job_id, identity=identity, findings=job.findings)
        flags = record_result(
            conn,
            claim.study_pk,
            identity.result_uid,
            identity.model,
            identity.model_version,
            job.findings,
            job.urgency,
            settings,
        )
        findings = [f | {"urgency": flag["urgency"]} for f, flag in zip(job.findings, flags, strict=True)]
        report = AIReport(identity.model, identity.model_version, "flagged" if findings else "negative", findings)
        hl7_export.enqueue(conn, claim.study_pk, identity.result_uid, report, claim.destinations, settings.hl7)
        if job.inputs is not None:
            save_inputs(conn, claim.job_id, claim.study_pk, identity.model, identity.model_version, job.inputs)
        detail = f"{len(job.findings)} findings; weights {identity.model_uid}; result {identity.result_uid}"
        audit.record(conn, claim.study_pk, who, "analysed", detail)
        seconds = timings.finished()
        jobs.finish(conn, claim, identity.model_version, {k: round(v, 4) for k, v in seconds.items()})
    return seconds


def commit_error(
    catalog: Engine, settings: Settings, claim: jobs.Claim, message: str, permanent: bool
) -> JobState | None:
    """Retry after the backoff, or fail for good; the job's new state (None when the claim was lost)."""
    with catalog.begin() as conn:
        state = jobs.record_error(conn, claim, message, permanent, settings.analysis)
        if state is JobState.FAILED:
            reason = f"analysis failed: {message}"[:1000]
            audit.record(conn, claim.study_pk, claim.model, "failed", reason)
            items.record_no_result(conn, claim.study_pk, "ai failed", claim.model, f"AI {reason}", settings.worklist)
            _report_no_result(conn, settings, claim, "failed", message)
    return state


def commit_out_of_scope(
    catalog: Engine,
    storage: Storage,
    settings: Settings,
    claim: jobs.Claim,
    reason: str,
    statement: tuple[str, list[Dataset]] | None = None,
) -> bool:
    """The scope gate refused the study: a final state, said in the audit trail, the item's history and, with
    `statement` (result UID, the SR saying so), in the study and to its destinations like a result."""
    history = f"AI not run: out of scope for {claim.model} ({reason})"
    with catalog.begin() as conn:
        if not jobs.record_out_of_scope(conn, claim, reason):
            return False
        if statement is not None:
            _store_and_send(conn, storage, settings, claim, *statement)
        audit.record(conn, claim.study_pk, claim.model, "out of scope", reason[:1000])
        items.record_no_result(conn, claim.study_pk, "out of scope", claim.model, history, settings.worklist)
        _report_no_result(conn, settings, claim, "out_of_scope", reason)
    return True


def _report_no_result(conn: Connection, settings: Settings, claim: jobs.Claim, status: str, reason: str) -> None:
    """Tell the RIS (mllp:// destinations) that this model gave no result, and why: never a silent negative."""
    key = derived_uid("hl7 status", str(claim.job_id), claim.model, status)
    report = AIReport(claim.model, "", status, [], reason)
    hl7_export.enqueue(conn, claim.study_pk, key, report, claim.destinations, settings.hl7)


def _store_and_send(
    conn: Connection, storage: Storage, settings: Settings, claim: jobs.Claim, result_uid: str, instances: list[Dataset]
) -> None:
    """The result's instances into the study, and armed for each destination that takes their kind."""
    stored = store_instances(conn, storage, claim.study_pk, claim.model, instances)
    dicom_destinations = [d for d in claim.destinations if not is_hl7_destination(d)]
    dicom_export.enqueue(conn, claim.study_pk, result_uid, stored, dicom_destinations, settings.export.kinds_for)
