"""Embedded mode: `dicomnode serve` alone receives, routes and analyses (no broker, no worker process)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
from sqlalchemy import func, select

from dicomnode.catalog.db import open_catalog
from dicomnode.catalog.schema import InputSummary, Instance, Study
from dicomnode.catalog.states import StudyAnalysis
from dicomnode.demo.synthetic import SeriesSpec, SyntheticPatient, radiograph
from dicomnode.ops.monitoring.inputs import FEATURES
from dicomnode.results.identity import result_uid
from models.registry import builtin_spec
from tests.support.dicom_files import DISTINCT_PHI, series
from tests.support.helpers import node_cli, storescu, wait_for
from tests.support.pacs import StoreSCP
from tests.support.pipeline import analysis_overrides, job_rows, result_rows, rule, wait_jobs
from tests.support.scope_cases import chest_ct
from tests.support.validate import validate

STANDIN = builtin_spec("standin-hyperdense")


CT = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage: the study's own images, not our results


def test_study_is_routed_analysed_and_its_result_recorded(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides())
    spec, files = series(tmp_path, 12, lesion_hu=80, body_part="HEAD", priority="STAT")
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"done"}, timeout=90)
    assert (job.model, job.attempts, job.model_version) == ("standin-hyperdense", 1, STANDIN.version)
    assert job.priority == 0 and job.series_uids == [spec.series_uid] and job.rules == ["ct"]
    assert set(job.timings) == {"queued_s", "load_s", "infer_s", "encode_s", "store_s", "total_s"}
    [result] = result_rows(catalog)
    assert result.result_uid == result_uid(spec.study_uid, "standin-hyperdense", STANDIN.version)
    assert result.model_uid == STANDIN.uid and result.max_probability == result.findings[0]["probability"]
    [finding] = result.findings
    assert finding["label"] == "hyperdense region" and finding["probability"] > 0.9
    z0, z1 = finding["bbox"][0], finding["bbox"][3]
    assert 0 < z0 < 6 <= z1 < 12, "the lesion sits at the centre slices"
    assert finding["series_uid"] == spec.series_uid and len(finding["slice_uids"]) == z1 - z0
    with catalog.connect() as conn:  # what the run was given, for the drift monitor: acquisition facts only
        [inputs] = conn.execute(select(InputSummary.__table__)).all()
    assert (inputs.job_fk, inputs.model_version) == (job.id, STANDIN.version)
    assert inputs.features["slices"] == 12 and inputs.features["intensity_p95"] > inputs.features["intensity_p05"]
    assert set(inputs.features) == set(FEATURES)

    listed = node_cli(node, "jobs")
    assert listed.returncode == 0 and "done" in listed.stdout and "STAT" in listed.stdout


def test_study_matching_no_rule_is_visibly_not_analysed(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides(rules=[rule("head", ["standin-hyperdense"], body_part=["HEAD"])]))
    _, files = series(tmp_path, 3, body_part="CHEST")
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)
    wait_for(lambda: StudyAnalysis.NO_RULE in node_cli(node, "studies").stdout, timeout=30)
    assert job_rows(catalog) == [] and result_rows(catalog) == []
    assert "no routing rule matched, not analysed" in node.log()


def test_unreadable_study_fails_its_job_clearly_and_the_node_keeps_running(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides())
    _, files = series(tmp_path, 8)
    del files[4]  # a missing slice: not one evenly spaced stack
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"failed"}, timeout=90)
    assert job.attempts == 1, "an unreadable study is not retried"
    assert "StudyUnreadable" in job.last_error and "evenly spaced" in job.last_error
    [listed] = [json.loads(line) for line in node_cli(node, "jobs", "--state", "failed", "--json").stdout.splitlines()]
    assert listed["last_error"] == job.last_error and listed["state"] == "failed"
    trail = node_cli(node, "audit", "--json").stdout
    assert '"action": "failed"' in trail and "evenly spaced" in trail, "the audit trail says the analysis failed"
    assert node.alive()

    _, good = series(tmp_path, 6)
    assert storescu(node, good).returncode == 0
    rows = wait_jobs(catalog, 2, {"done", "failed"}, timeout=90)
    assert [r.state for r in rows] == ["failed", "done"]


def test_a_rule_wider_than_its_model_leaves_the_job_out_of_scope_naming_the_modality(
    start_node, tmp_path: Path
) -> None:  # noqa: ANN001
    """A rule that sends a radiograph to a CT model: the job ends out of scope at once, saying why; nothing is
    guessed."""
    node = start_node(**analysis_overrides(rules=[rule("everything", ["standin-hyperdense"])]))
    image = np.random.default_rng(0).random((64, 64))
    path = tmp_path / "xr.dcm"
    radiograph(SeriesSpec(modality="DX", body_part="CHEST"), image).save_as(path, enforce_file_format=True)
    assert storescu(node, [path]).returncode == 0
    [job] = wait_jobs(open_catalog(node.catalog_url), 1, {"out of scope"}, timeout=90)
    assert job.attempts == 1 and "modality DX; the model accepts CT" in job.last_error


def test_a_chest_ct_routed_to_the_head_model_is_out_of_scope_never_a_finding(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    """The measured case: a CT chest sent to ct-hemorrhage came back as a 2-litre bleed. The gate refuses it from
    the headers (no body part given here, so from the field of view) before the model is even loaded."""
    pacs = StoreSCP(tmp_path / "pacs").start()
    try:
        routed = {**rule("all-ct", ["ct-hemorrhage"], modality=["CT"]), "destinations": [pacs.destination]}
        node = start_node(**analysis_overrides(rules=[routed]))
        volume, sources = chest_ct(tmp_path / "chest", fov_mm=380, body_part="")
        assert storescu(node, [Path(ds.filename) for ds in sources]).returncode == 0
        [job] = wait_jobs(open_catalog(node.catalog_url), 1, {"out of scope"}, timeout=90)
        assert "field of view 380 mm; the model expects 150-320 mm" in job.last_error
        assert result_rows(open_catalog(node.catalog_url)) == [], "out of scope: no result, no finding"
        # the PACS is told too: an SR that says it was not analysed and why, and nothing that reads as negative
        [sr] = wait_for(lambda: pacs.received() or None, timeout=60)
        validate(sr)
        dump = subprocess.run(["dsrdump", "+Pl", str(sr)], capture_output=True, text=True, check=False).stdout
        assert "Not analysed by ct-hemorrhage" in dump and "field of view 380 mm" in dump
        assert "Absent" not in dump and "Finding" not in dump and "Probability" not in dump
    finally:
        pacs.stop()


def test_transient_errors_retry_with_backoff_then_fail_visibly_and_retry_on_request(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    counter = tmp_path / "flaky-calls"
    node = start_node(
        env={"FLAKY_COUNTER": str(counter), "FLAKY_FAILURES": "3"},
        **analysis_overrides(rules=[rule("ct", ["flaky"], modality=["CT"])], max_attempts=3),
    )
    _, files = series(tmp_path, 4)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    [job] = wait_jobs(catalog, 1, {"failed"}, timeout=90)
    assert job.attempts == 3 and counter.read_text() == "3"
    assert "OSError: transient failure 3" in job.last_error
    assert "will retry" in node.log() and "failed after 3 attempts" in node.log()
    assert result_rows(catalog) == []

    assert node_cli(node, "retry", str(job.id)).returncode == 0
    [job] = wait_jobs(catalog, 1, {"done"}, timeout=60)
    assert job.attempts == 1 and counter.read_text() == "4"
    assert len(result_rows(catalog)) == 1
    assert node_cli(node, "retry", str(job.id)).returncode == 1, "only failed jobs can be retried"


def test_job_interrupted_by_a_node_kill_completes_once_after_restart(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    started = tmp_path / "slow-started"
    env = {"SLOW_MODEL_STARTED": str(started), "SLOW_MODEL_SECONDS": "2"}
    overrides = analysis_overrides(rules=[rule("ct", ["slow"], modality=["CT"])])
    node = start_node(env=env, **overrides)
    _, files = series(tmp_path, 4)
    assert storescu(node, files).returncode == 0
    catalog = open_catalog(node.catalog_url)

    wait_for(started.exists, timeout=60)
    node.stop(signal.SIGKILL)
    [job] = job_rows(catalog)
    assert job.state == "running" and job.attempts == 1

    restarted = start_node(env=env, **overrides)
    [job] = wait_jobs(catalog, 1, {"done"}, timeout=60)
    assert job.attempts == 2
    [result] = result_rows(catalog)
    assert result.run_count == 1 and result.job_fk == job.id
    assert "runs of stopped workers" in restarted.log()


def test_result_of_a_recompleted_study_is_replaced_not_duplicated(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    node = start_node(**analysis_overrides())
    spec, files = series(tmp_path, 8, lesion_hu=80)
    assert storescu(node, files[:6]).returncode == 0
    catalog = open_catalog(node.catalog_url)
    [first] = wait_jobs(catalog, 1, {"done"}, timeout=90)
    [before] = result_rows(catalog)

    assert storescu(node, files[6:]).returncode == 0  # late slices reopen the study

    def rerun_done() -> bool:
        # states, not counts: on a loaded machine the first six may themselves have completed in two goes, so
        # wait for the run made for the study's latest completion, after all eight arrived
        job = job_rows(catalog)[0]
        with catalog.connect() as conn:
            completions = conn.scalar(select(Study.completion_count))
            instances = conn.scalar(select(func.count()).select_from(Instance).where(Instance.sop_class_uid == CT))
        return job.state == "done" and job.generation == completions > first.generation and instances == 8

    wait_for(rerun_done, timeout=60)
    wait_for(lambda: result_rows(catalog)[0].run_count > before.run_count, timeout=30)
    [after] = result_rows(catalog)
    assert after.result_uid == before.result_uid == result_uid(spec.study_uid, "standin-hyperdense", STANDIN.version)
    assert after.id == before.id, "replaced in place, not added"
    assert json.dumps(after.findings) != json.dumps(before.findings), "the re-run saw all 8 slices"


def test_no_patient_data_in_logs_while_analysing(start_node, tmp_path: Path) -> None:  # noqa: ANN001
    """Analysis decodes whole data sets; pydicom warnings about bad values must not carry them into the log."""
    patient = SyntheticPatient(
        name=DISTINCT_PHI["name"], patient_id=DISTINCT_PHI["patient_id"], birth_date=DISTINCT_PHI["birth_date"]
    )
    spec, files = series(tmp_path, 6, lesion_hu=80, patient=patient, accession=DISTINCT_PHI["accession"])
    for path in files:  # values a strict reader would complain about, each holding a sentinel
        ds = pydicom.dcmread(path)
        ds.PatientName = DISTINCT_PHI["name"] + "^" + "X" * 70  # PN component longer than 64
        ds.AccessionNumber = DISTINCT_PHI["accession"] + "Y" * 20  # SH longer than 16
        ds.PatientBirthDate = DISTINCT_PHI["birth_date"] + "99"  # not a DA
        ds.save_as(path, enforce_file_format=True)
    node = start_node(**analysis_overrides())
    assert storescu(node, files).returncode == 0
    wait_jobs(open_catalog(node.catalog_url), 1, {"done"}, timeout=90)
    # the worker logs "job done" after its commit: wait for the line, not only the state
    wait_for(lambda: "job done" in node.log(), timeout=30)
    log = node.log()
    assert "job done" in log and "DEBUG" in log
    for value in DISTINCT_PHI.values():
        assert value not in log and value.split("^")[0] not in log


def test_a_worker_warms_the_result_encoders_before_its_first_study() -> None:
    """highdicom reads its tables of the standard on the first SR a process builds (0.3-0.5 s of the first study
    after every start, measured): the worker's warm-up encodes one from a synthetic header instead. In a fresh
    process, so that no other test has warmed them already."""
    script = (
        "import highdicom._standard_utils as u\n"
        "from workers.runtime import _warm_encoders\n"
        "assert u.get_module_attribute_map.cache_info().currsize == 0\n"
        "_warm_encoders()\n"
        "assert u.get_module_attribute_map.cache_info().currsize == 1\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    # unconfigured, logging writes warnings and errors to stderr (logging.lastResort)
    assert "warming up the result encoders failed" not in run.stderr, run.stderr[-2000:]
