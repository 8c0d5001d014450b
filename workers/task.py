"""The analysis task body, the same in a Celery worker and in embedded mode.

claim -> load each series -> keep what the model accepts -> predict -> encode SR (and SEG) -> commit (the
analysis stage's one result transaction). A heartbeat proves the run is alive; errors are recorded on the
job (retried with backoff, or failed for good), never raised to the queue, so the message is acknowledged
once the catalog says what happened.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from dicomnode.analysis.choice import ranked
from dicomnode.analysis.commit import FinishedJob, Timings, commit_error, commit_out_of_scope, commit_result
from dicomnode.analysis.scope import Loaded, OutOfScope, in_scope
from dicomnode.analysis.volume import StudyUnreadable, load_series_with_sources
from dicomnode.catalog.records import series_instance_paths
from dicomnode.catalog.states import JobOutcome, JobState
from dicomnode.jobs import lifecycle as jobs
from dicomnode.jobs.lifecycle import Claim, LostClaim
from dicomnode.ops.monitoring.inputs import summarise as summarise_inputs
from dicomnode.results.content import analysed_series
from dicomnode.results.encode import ResultEncodingError, encode_out_of_scope, encode_result
from dicomnode.results.identity import ResultIdentity
from models.findings import Finding
from models.image import ImageVolume
from models.registry import UnknownModel
from workers.runtime import Runtime

log = logging.getLogger(__name__)
PERMANENT = (StudyUnreadable, UnknownModel, ResultEncodingError)


def run_job(rt: Runtime, job_id: int) -> JobOutcome:
    """Run one job and say how it ended."""
    with rt.catalog.begin() as conn:
        claim = jobs.claim(conn, job_id, jobs.worker_identity())
    if claim is None:
        log.info("job %d not claimable (finished, running elsewhere, or not due): skipped", job_id)
        return JobOutcome.SKIPPED
    log.info(
        "job start job=%d model=%s study=%s attempt=%d", job_id, claim.model, claim.study_instance_uid, claim.attempt
    )
    try:
        with _heartbeat(rt, claim):
            timings = _analyse(rt, claim)
    except LostClaim as exc:
        log.warning("job %d: %s; this run's result is discarded", job_id, exc)
        return JobOutcome.LOST
    except OutOfScope as exc:
        if not commit_out_of_scope(rt.catalog, rt.storage, rt.settings, claim, str(exc), _saying_so(rt, claim, exc)):
            return JobOutcome.LOST
        log.warning("job %d out of scope (model not run): %s", job_id, exc)
        return JobOutcome.OUT_OF_SCOPE
    except Exception as exc:
        return _record_error(rt, claim, exc)
    log.info("job done job=%d model=%s total_s=%.2f", job_id, claim.model, timings["total_s"])
    return JobOutcome.DONE


def _analyse(rt: Runtime, claim: Claim) -> dict[str, float]:
    timings = Timings(queued_s=_seconds(claim.enqueued_at, claim.started_at))
    with rt.catalog.connect() as conn:
        stored = series_instance_paths(conn, claim.study_pk, claim.series_uids)
    paths = {uid: [rt.storage.absolute(p) for p in ps] for uid, ps in stored.items()}
    spec = rt.registry.get(claim.model)
    one = rt.settings.analysis.series == "best" and spec.manifest is not None and spec.manifest.dims == 3
    choosing = one and len(paths) > 1
    order = ranked(paths, spec.manifest) if choosing else list(paths)
    loaded = in_scope(_series_in_order(paths, order, claim.job_id, one), spec.manifest, claim.model, claim.job_id, one)
    if choosing:
        log.info(
            "job %d: read series %s (of %d routed, ranked best first)",
            claim.job_id,
            loaded[0][0].series_uid,
            len(paths),
        )
    inputs = summarise_inputs(loaded)
    timings.mark("load_s")
    model = rt.model(claim.model)
    analysed = [analysed_series(v.series_uid, s, model.predict(v), v.spacing_known) for v, s in loaded]
    timings.mark("infer_s")
    identity = ResultIdentity.of(claim.study_instance_uid, model.name, model.version, spec.uid)
    looked_for = [o.code for o in spec.manifest.outputs] if spec.manifest else []
    instances = encode_result(analysed, identity, looked_for, rt.settings.export.kinds_wanted(claim.destinations))
    timings.mark("encode_s")
    findings = [_as_record(f, v) for (v, _), a in zip(loaded, analysed, strict=True) for f in a.findings]
    urgency = {o.label: o.urgency for o in spec.manifest.outputs} if spec.manifest else {}
    finished = FinishedJob(claim, identity, instances, findings, urgency, inputs)
    return commit_result(rt.catalog, rt.storage, rt.settings, finished, timings)


def _series_in_order(
    paths: dict[str, list[Path]], order: list[str], job_id: int, pass_over_unreadable: bool
) -> Iterator[Loaded]:
    """Each series in `order`, loaded. With `pass_over_unreadable` (one series is read), an unreadable one is
    logged and the next tried; when none is left, the first one's error is raised."""
    first_error = None
    for uid in order:
        try:
            yield load_series_with_sources(paths[uid], uid)
        except StudyUnreadable as exc:
            if not pass_over_unreadable:
                raise
            first_error = first_error or exc
            log.warning("job %d: series %s cannot be read, the next is tried: %s", job_id, uid, exc)
    if first_error is not None:
        raise first_error


def _saying_so(rt: Runtime, claim: Claim, exc: OutOfScope) -> tuple[str, list] | None:
    """The SR stating that the model was not run and why (none if it cannot be encoded: the job still says so)."""
    if not exc.sources:
        return None
    spec = rt.registry.get(claim.model)
    identity = ResultIdentity.of(claim.study_instance_uid, spec.name, spec.version, spec.uid)
    try:
        return identity.result_uid, encode_out_of_scope(exc.sources, identity, str(exc))
    except ResultEncodingError as error:
        log.warning("job %d: no out-of-scope SR: %s", claim.job_id, error)
        return None


def _as_record(finding: Finding, volume: ImageVolume) -> dict:
    z0, z1 = finding.bbox[0], finding.bbox[3]
    return {**finding.to_json(), "series_uid": volume.series_uid, "slice_uids": list(volume.slice_uids[z0:z1])}


def _record_error(rt: Runtime, claim: Claim, exc: Exception) -> JobOutcome:
    permanent = isinstance(exc, PERMANENT)
    message = f"{type(exc).__name__}: {exc}"
    state = commit_error(rt.catalog, rt.settings, claim, message, permanent)
    if permanent:
        log.error("job %d failed (not retried): %s", claim.job_id, message)
    elif state is JobState.PENDING:
        log.warning("job %d attempt %d failed, will retry: %s", claim.job_id, claim.attempt, message, exc_info=exc)
    else:
        log.error("job %d failed after %d attempts: %s", claim.job_id, claim.attempt, message, exc_info=exc)
    return {JobState.PENDING: JobOutcome.RETRY, JobState.FAILED: JobOutcome.FAILED}.get(state, JobOutcome.LOST)


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
