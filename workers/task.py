"""The analysis task body, the same in a Celery worker and in embedded mode.

claim -> load each series -> run the model -> encode SR (and SEG) -> store
them in the study, write the result, arm the exports, move the study on the
worklist, arm its webhooks and mark the job done in one transaction. A
heartbeat proves the run is alive; errors are recorded on the job (retried
with backoff, or failed for good), never raised to the queue, so the message
is acknowledged once the catalog says what happened.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pydicom import Dataset

from dicomnode.analysis.volume import StudyUnreadable, load_series_with_sources
from dicomnode.catalog.records import series_instance_paths
from dicomnode.dicom.uids import result_uid
from dicomnode.export import dicom as exports
from dicomnode.jobs import lifecycle as jobs
from dicomnode.jobs.lifecycle import Claim, LostClaim
from dicomnode.ops import audit
from dicomnode.results.content import AnalysedSeries
from dicomnode.results.encode import ResultEncodingError, encode_result
from dicomnode.results.identity import ResultIdentity
from dicomnode.results.rows import save_result
from dicomnode.results.store import store_instances
from dicomnode.worklist.flags import record_result
from models.findings import Finding
from models.image import ImageVolume
from models.registry import UnknownModel
from workers.runtime import Runtime

Loaded = tuple[ImageVolume, list[Dataset]]

log = logging.getLogger(__name__)
PERMANENT = (StudyUnreadable, UnknownModel, ResultEncodingError)


def run_job(rt: Runtime, job_id: int) -> str:
    """Run one job; return its outcome: done, retry, failed, skipped (not claimable) or lost (claim lost)."""
    with rt.catalog.begin() as conn:
        claim = jobs.claim(conn, job_id, jobs.worker_identity())
    if claim is None:
        log.info("job %d not claimable (finished, running elsewhere, or not due): skipped", job_id)
        return "skipped"
    log.info("job start job=%d model=%s study=%s attempt=%d", job_id, claim.model, claim.study_instance_uid,
             claim.attempt)  # fmt: skip
    try:
        with _heartbeat(rt, claim):
            timings = _analyse(rt, claim)
    except LostClaim as exc:
        log.warning("job %d: %s; this run's result is discarded", job_id, exc)
        return "lost"
    except Exception as exc:
        return _record_error(rt, claim, exc)
    log.info("job done job=%d model=%s total_s=%.2f", job_id, claim.model, timings["total_s"])
    return "done"


def _analyse(rt: Runtime, claim: Claim) -> dict[str, float]:
    t0 = time.perf_counter()
    with rt.catalog.connect() as conn:
        paths = series_instance_paths(conn, claim.study_pk, claim.series_uids)
    loaded = [load_series_with_sources([rt.storage.absolute(p) for p in ps], uid) for uid, ps in paths.items()]
    spec = rt.registry.get(claim.model)
    loaded = _accepted(loaded, spec.manifest.modalities if spec.manifest else None, claim)
    t_loaded = time.perf_counter()
    model = rt.model(claim.model)
    analysed = [AnalysedSeries(v.series_uid, sources, model.predict(v)) for v, sources in loaded]
    t_inferred = time.perf_counter()
    identity = ResultIdentity(result_uid(claim.study_instance_uid, model.name, model.version), model.name,
                              model.version, spec.uid)  # fmt: skip
    looked_for = [o.code for o in spec.manifest.outputs] if spec.manifest else []
    instances = encode_result(analysed, identity, looked_for)
    t_encoded = time.perf_counter()
    findings = [_as_record(f, v) for (v, _), a in zip(loaded, analysed, strict=True) for f in a.findings]
    with rt.catalog.begin() as conn:
        stored = store_instances(conn, rt.storage, claim.study_pk, model.name, instances)
        save_result(conn, study_pk=claim.study_pk, study_instance_uid=claim.study_instance_uid, job_id=claim.job_id,
                    model=model.name, model_version=model.version, model_uid=spec.uid, findings=findings)  # fmt: skip
        exports.enqueue(conn, claim.study_pk, identity.result_uid, stored, claim.destinations)
        urgency = {o.label: o.urgency for o in spec.manifest.outputs} if spec.manifest else {}
        record_result(conn, claim.study_pk, identity.result_uid, model.name, model.version, findings, urgency,
                      rt.settings)  # fmt: skip
        audit.record(conn, claim.study_pk, f"{model.name} {model.version}", "analysed",
                     f"{len(findings)} findings; weights {spec.uid}; result {identity.result_uid}")  # fmt: skip
        t_end = time.perf_counter()
        timings = {
            "queued_s": _seconds(claim.enqueued_at, claim.started_at),
            "load_s": t_loaded - t0,
            "infer_s": t_inferred - t_loaded,
            "encode_s": t_encoded - t_inferred,
            "store_s": t_end - t_encoded,
            "total_s": t_end - t0,
        }
        jobs.finish(conn, claim, model.version, {k: round(v, 4) for k, v in timings.items()})
    return timings


def _accepted(loaded: list[Loaded], modalities: list[str] | None, claim: Claim) -> list[Loaded]:
    """The series of a modality the model accepts; a routing rule wider than the model must not feed it MR to a
    CT network. None left is a permanent failure that says so."""
    if modalities is None:
        return loaded
    kept = [(v, s) for v, s in loaded if v.modality.upper() in modalities]
    volumes = [v for v, _ in loaded]
    for v in volumes:
        if all(v is not k for k, _ in kept):
            log.warning("job %d: series %s is %s; %s accepts %s: skipped", claim.job_id, v.series_uid,
                        v.modality or "of no modality", claim.model, ", ".join(modalities))  # fmt: skip
    if not kept:
        found = ", ".join(sorted({v.modality or "none" for v in volumes}))
        raise StudyUnreadable(f"model {claim.model} accepts {', '.join(modalities)}; the routed series are {found}")
    return kept


def _as_record(finding: Finding, volume: ImageVolume) -> dict:
    z0, z1 = finding.bbox[0], finding.bbox[3]
    return {**finding.to_json(), "series_uid": volume.series_uid, "slice_uids": list(volume.slice_uids[z0:z1])}


def _record_error(rt: Runtime, claim: Claim, exc: Exception) -> str:
    permanent = isinstance(exc, PERMANENT)
    message = f"{type(exc).__name__}: {exc}"
    with rt.catalog.begin() as conn:
        state = jobs.record_error(conn, claim, message, permanent, rt.policy)
        if state == "failed":
            audit.record(conn, claim.study_pk, claim.model, "failed", f"analysis failed: {message}"[:1000])
    if permanent:
        log.error("job %d failed (not retried): %s", claim.job_id, message)
    elif state == "pending":
        log.warning("job %d attempt %d failed, will retry: %s", claim.job_id, claim.attempt, message, exc_info=exc)
    else:
        log.error("job %d failed after %d attempts: %s", claim.job_id, claim.attempt, message, exc_info=exc)
    return {"pending": "retry", "failed": "failed"}.get(state, "lost")


@contextmanager
def _heartbeat(rt: Runtime, claim: Claim) -> Iterator[None]:
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(rt.policy.heartbeat_s):
            try:
                with rt.catalog.begin() as conn:
                    if not jobs.heartbeat(conn, claim):
                        return  # claim lost; finish() will say so
            except Exception:
                log.warning("job %d: heartbeat failed; retrying", claim.job_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"heartbeat-{claim.job_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _seconds(start, end) -> float:  # noqa: ANN001
    return (end - start).total_seconds() if start is not None else 0.0
