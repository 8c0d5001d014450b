"""Alerts: a monitored figure past its threshold opens an alert for the model version (a row in model_alerts, the
gauge dicomnode_model_alert, a `model_alert` webhook, an audit act); the figure back within it clears the alert.
A figure judged on too few studies or verdicts (min_studies, min_feedback) neither raises nor clears."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, insert, select, update

from dicomnode.catalog.db import utcnow
from dicomnode.catalog.schema import ModelAlert, Result
from dicomnode.config.export import NotifyConfig
from dicomnode.config.ops import MonitoringConfig
from dicomnode.dicom.uids import derived_uid
from dicomnode.export.webhook import enqueue_model_alert
from dicomnode.ops import audit
from dicomnode.ops.monitoring.figures import monitored
from dicomnode.service import Service

log = logging.getLogger(__name__)
_alerts, _results = ModelAlert.__table__, Result.__table__
ACTOR = "monitor"


@dataclass(frozen=True)
class Judgement:
    kind: str
    value: float
    threshold: float
    breached: bool
    detail: str


def judge(figures: dict[str, Any], config: MonitoringConfig) -> list[Judgement]:
    """Every figure that has enough data to be judged, breached or not."""
    out: list[Judgement] = []
    analysed, rate, baseline = figures["analysed"], figures["positive_rate"], figures["baseline_positive_rate"]
    if analysed >= config.min_studies and rate is not None and baseline is not None:
        change = abs(rate - baseline)
        out.append(
            Judgement(
                "positive rate",
                round(change, 4),
                config.positive_rate_change_alert,
                change > config.positive_rate_change_alert,
                f"positive rate {rate:.1%} over {analysed} studies, baseline {baseline:.1%}",
            )
        )
    jobs = figures["jobs"]
    ended = jobs["done"] + jobs["failed"] + jobs["out_of_scope"]
    if ended >= config.min_studies:
        for kind, key, threshold in (
            ("failed rate", "failed_rate", config.failed_rate_alert),
            ("out-of-scope rate", "out_of_scope_rate", config.out_of_scope_rate_alert),
        ):
            value = jobs[key]
            out.append(Judgement(kind, value, threshold, value > threshold, f"{kind} {value:.1%} of {ended} jobs"))
    drift = figures["drift"]
    if drift["current_n"] >= config.min_studies and drift["baseline_n"] >= config.min_studies:
        for feature, psi in drift["psi"].items():
            if psi is not None:
                detail = f"{feature} PSI {psi:.2f} ({drift['current_n']} recent runs vs {drift['baseline_n']} baseline)"
                out.append(Judgement(f"drift: {feature}", psi, config.psi_alert, psi > config.psi_alert, detail))
    feedback = figures["feedback"]
    decided = feedback["agree"] + feedback["disagree"]
    if decided >= config.min_feedback:
        rate = feedback["agreement_rate"]
        detail = f"readers agreed with {rate:.0%} of {decided} flags they judged"
        out.append(Judgement("agreement", rate, config.agreement_alert, rate < config.agreement_alert, detail))
    return out


def apply(
    conn: Connection,
    model: str,
    version: str,
    judgements: list[Judgement],
    notify: NotifyConfig,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Open the alerts newly breached and clear those judged back within their threshold: (raised, cleared)."""
    mine = and_(_alerts.c.model == model, _alerts.c.model_version == version, _alerts.c.cleared_at.is_(None))
    open_kinds = {r.kind: r.id for r in conn.execute(select(_alerts.c.kind, _alerts.c.id).where(mine)).all()}
    study_pk = conn.execute(
        select(_results.c.study_fk)
        .where(_results.c.model == model, _results.c.model_version == version)
        .order_by(_results.c.updated_at.desc())
        .limit(1)
    ).scalar()
    raised, cleared = [], []
    who = f"{ACTOR} {model} {version}"
    for j in judgements:
        if j.breached and j.kind not in open_kinds:
            values = {"kind": j.kind, "value": j.value, "threshold": j.threshold, "detail": j.detail[:1000]}
            conn.execute(insert(_alerts).values(model=model, model_version=version, raised_at=now, **values))
            if study_pk is not None:
                audit.record(conn, study_pk, who, "model alert", j.detail[:1000], at=now)
                uid = derived_uid("model-alert", model, version, j.kind, now.isoformat())
                payload = {"model": model, "model_version": version, **values, "raised_at": now.isoformat() + "Z"}
                enqueue_model_alert(conn, study_pk, uid, payload, notify)
            raised.append(j.kind)
        elif not j.breached and j.kind in open_kinds:
            conn.execute(update(_alerts).where(_alerts.c.id == open_kinds[j.kind]).values(cleared_at=now))
            if study_pk is not None:
                audit.record(conn, study_pk, who, "alert cleared", j.detail[:1000], at=now)
            cleared.append(j.kind)
    return raised, cleared


def open_alerts(conn: Connection, model: str | None = None) -> list[dict[str, Any]]:
    query = select(_alerts).where(_alerts.c.cleared_at.is_(None)).order_by(_alerts.c.raised_at)
    if model:
        query = query.where(_alerts.c.model == model)
    return [
        {
            "model": r.model,
            "model_version": r.model_version,
            "kind": r.kind,
            "value": r.value,
            "threshold": r.threshold,
            "detail": r.detail,
            "raised_at": r.raised_at.isoformat(timespec="seconds") + "Z",
        }
        for r in conn.execute(query).all()
    ]


def of_version(alerts: list[dict[str, Any]], figures: dict[str, Any]) -> list[dict[str, Any]]:
    """The open alerts (open_alerts) of the model version these figures are of."""
    return [a for a in alerts if (a["model"], a["model_version"]) == (figures["model"], figures["model_version"])]


def check(catalog: Engine, config: MonitoringConfig, notify: NotifyConfig, now: datetime | None = None) -> int:
    """Judge every model version once; the number of alerts raised or cleared."""
    now = now or utcnow()
    changed = 0
    with catalog.begin() as conn:
        for figures in monitored(conn, config, now):
            model, version = figures["model"], figures["model_version"]
            raised, cleared = apply(conn, model, version, judge(figures, config), notify, now)
            for kind in raised:
                log.warning("model alert: %s %s: %s", model, version, kind)
            for kind in cleared:
                log.info("model alert cleared: %s %s: %s", model, version, kind)
            changed += len(raised) + len(cleared)
    return changed


class MonitorService(Service):
    """Judges the monitored figures every check_minutes."""

    def __init__(self, catalog: Engine, config: MonitoringConfig, notify: NotifyConfig) -> None:
        super().__init__("monitor", config.check_minutes * 60)
        self.catalog, self.config, self.notify = catalog, config, notify

    def run_round(self) -> bool:
        check(self.catalog, self.config, self.notify)
        return False
