"""Routing rules: matching criteria, merging rules per model, and job rows written with the completion."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import select

from dicomnode.assembly.completion import complete_quiet_studies
from dicomnode.catalog.db import open_catalog, utcnow
from dicomnode.catalog.records import Receipt, record_instance
from dicomnode.catalog.schema import Job, Study
from dicomnode.config.routing import RoutingRule, RuleMatch
from dicomnode.config.settings import ConfigError, load_settings
from dicomnode.routing.priority import PriorityClass
from dicomnode.routing.router import Router
from dicomnode.routing.rules import SeriesFacts, matches, plan
from models.registry import build_registry
from tests.support.instances import header

CT = "1.2.840.10008.5.1.4.1.1.2"
HEAD = SeriesFacts("1.1", "CT", "HEAD", "Head 5mm", {CT}, {"CT_SCANNER1"}, {"DICOMNODE"})


@pytest.mark.parametrize(
    ("match", "expected"),
    [
        (RuleMatch(), True),
        (RuleMatch(modality=["ct"]), True),
        (RuleMatch(modality=["MR", "CT"]), True),
        (RuleMatch(modality=["MR"]), False),
        (RuleMatch(body_part=["head", "brain"]), True),
        (RuleMatch(body_part=["CHEST"]), False),
        (RuleMatch(sop_class=[CT]), True),
        (RuleMatch(sop_class=["1.2.840.10008.5.1.4.1.1.4"]), False),
        (RuleMatch(series_description="(?i)head"), True),
        (RuleMatch(series_description="^(?!.*(?i:scout))"), True),
        (RuleMatch(series_description="(?i)scout"), False),
        (RuleMatch(calling_ae=["CT_SCANNER1"]), True),
        (RuleMatch(calling_ae=["CT_SCANNER2"]), False),
        (RuleMatch(called_ae=["DICOMNODE"]), True),
        (RuleMatch(called_ae=["AI_ROUTER"]), False),
        (RuleMatch(modality=["CT"], body_part=["CHEST"]), False),
    ],
)
def test_every_given_criterion_must_hold(match: RuleMatch, expected: bool) -> None:
    assert matches(match, HEAD) is expected


def test_rules_naming_the_same_model_merge_into_one_job() -> None:
    scout = replace(HEAD, series_uid="1.2", description="Scout")
    chest = replace(HEAD, series_uid="1.3", body_part="CHEST", description="Chest")
    rules = [
        RoutingRule(
            name="head",
            match=RuleMatch(body_part=["HEAD"], series_description="^(?!Scout)"),
            models=["standin-hyperdense"],
            destinations=["PACS@10.0.0.1:104"],
        ),
        RoutingRule(
            name="all-ct",
            match=RuleMatch(modality=["CT"]),
            models=["standin-hyperdense"],
            destinations=["PACS@10.0.0.1:104", "AI@10.0.0.2:104"],
        ),
        RoutingRule(name="mr", match=RuleMatch(modality=["MR"]), models=["other"]),
    ]
    [job] = plan(rules, [HEAD, scout, chest])
    assert job.model == "standin-hyperdense"
    assert job.series_uids == ["1.1", "1.2", "1.3"]
    assert job.destinations == ["PACS@10.0.0.1:104", "AI@10.0.0.2:104"]
    assert job.rules == ["head", "all-ct"]
    assert plan(rules[:1], [scout, chest]) == []


def test_completion_writes_jobs_or_records_no_rule() -> None:
    catalog = open_catalog("sqlite://")
    then = utcnow() - timedelta(seconds=60)
    head = header("1.2.3.1", "1.2.3")
    head = replace(head, modality="CT", body_part_examined="HEAD", requested_procedure_priority="STAT")
    chest = replace(header("1.2.4.1", "1.2.4"), modality="CT", body_part_examined="CHEST")
    with catalog.begin() as conn:
        for h in (head, chest):
            record_instance(
                conn, h, Receipt("CT_SCANNER1", "DICOMNODE", "127.0.0.1", "1.2", then), "p" + h.sop_instance_uid, 1
            )
    woken = []
    rules = [RoutingRule(name="head", match=RuleMatch(body_part=["HEAD"]), models=["standin-hyperdense"])]
    hook = Router(rules, build_registry(), lambda: woken.append(1))
    assert len(complete_quiet_studies(catalog, hook, 10)) == 2
    assert len(woken) == 2, "the scheduler is woken after each commit"
    with catalog.connect() as conn:
        analysis = dict(conn.execute(select(Study.study_instance_uid, Study.analysis)).all())
        [job] = conn.execute(select(Job.__table__)).all()
    assert analysis == {"1.2.3": "routed", "1.2.4": "no rule"}
    assert (job.model, job.queue, job.priority, job.state) == (
        "standin-hyperdense",
        "dicomnode.ct",
        PriorityClass.STAT,
        "pending",
    )
    assert job.series_uids == ["1.2.3.1"] and job.rules == ["head"] and job.generation == 1


def test_configuration_errors_name_the_bad_rule(tmp_path) -> None:  # noqa: ANN001
    cfg = tmp_path / "c.toml"
    cfg.write_text('[[routing.rules]]\nname = "x"\nmodels = ["no-such-model"]\n')
    with pytest.raises(ConfigError, match=r"routing\.rules\.0\.models \(x\): unknown model 'no-such-model'"):
        load_settings(cfg)
    cfg.write_text('[[routing.rules]]\nname = "x"\nmodels = ["standin-hyperdense"]\ndestinations = ["PACS"]\n')
    with pytest.raises(ConfigError, match=r"routing\.rules\.0\.destinations.*AE@HOST:PORT"):
        load_settings(cfg)
    cfg.write_text(
        '[[routing.rules]]\nname = "x"\nmodels = ["standin-hyperdense"]\n[routing.rules.match]\n'
        'series_description = "(unclosed"\n'
    )
    with pytest.raises(ConfigError, match="series_description.*not a regular expression"):
        load_settings(cfg)
    cfg.write_text('[analysis]\nmodel_plugins = ["nowhere.models:SPECS"]\n')
    with pytest.raises(ConfigError, match="analysis.model_plugins: cannot import nowhere.models:SPECS"):
        load_settings(cfg)


def test_default_rules_send_ct_heads_and_chest_radiographs_to_the_built_in_detectors() -> None:
    from dicomnode.config.settings import Settings
    from dicomnode.routing.router import SeriesFacts, plan

    rules = Settings().routing.rules
    series = [
        SeriesFacts("1", "CT", "HEAD", "Head w/o"),
        SeriesFacts("2", "DX", "CHEST", "PA"),
        SeriesFacts("3", "CT", "CHEST", "Chest"),  # no built-in model for it: not analysed
    ]
    planned = {job.model: job.series_uids for job in plan(rules, series)}
    assert planned == {"ct-hemorrhage": ["1"], "cxr-pneumothorax": ["2"]}
