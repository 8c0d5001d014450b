"""The monitored figures of each model version, from the catalog (so they count every worker's runs): studies
analysed per day, positive rate (against the baseline's), score histogram, failed and out-of-scope rates, time to
result, input drift (PSI per feature against the baseline window) and readers' agreement with its flags (PPV with
a Wilson 95% interval). Aggregated in SQL; the drift and the time to result use the window's latest
CURRENT_SAMPLE runs."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Integer, and_, case, cast, func, select

from dicomnode.catalog.schema import Feedback, InputSummary, Job, Result
from dicomnode.catalog.states import JobState
from dicomnode.config.ops import MonitoringConfig
from dicomnode.ops.monitoring.drift import psi_categorical, psi_numeric
from dicomnode.ops.monitoring.inputs import CATEGORICAL, NUMERIC
from dicomnode.worklist.feedback import Verdict

BINS = 10  # score histogram over max probability 0..1
CURRENT_SAMPLE = 2000  # recent runs the drift and the time to result are judged on
TIME_BUCKETS_S = (60, 300, 900, 3600)
_results, _jobs, _inputs, _feedback = Result.__table__, Job.__table__, InputSummary.__table__, Feedback.__table__


def monitored(
    conn: Connection, config: MonitoringConfig, now: datetime, model: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """One dict per model version that has results, newest first per model."""
    start = _naive(since) if since else now - timedelta(days=config.window_days)
    versions = select(_results.c.model, _results.c.model_version, func.max(_results.c.updated_at)).group_by(
        _results.c.model, _results.c.model_version
    )
    if model:
        versions = versions.where(_results.c.model == model)
    rows = conn.execute(versions.order_by(_results.c.model, func.max(_results.c.updated_at).desc())).all()
    return [_version(conn, config, m, v, start, now) for m, v, _ in rows]


def _version(
    conn: Connection, config: MonitoringConfig, model: str, version: str, start: datetime, now: datetime
) -> dict[str, Any]:
    mine = and_(_results.c.model == model, _results.c.model_version == version)
    window = and_(mine, _results.c.updated_at >= start, _results.c.updated_at <= now)
    per_day, histogram = _scores_by_day(conn, window)
    analysed, positive = sum(d["analysed"] for d in per_day), sum(d["positive"] for d in per_day)
    baseline_positive = _baseline_positive_rate(conn, config, mine)
    return {
        "model": model,
        "model_version": version,
        "window": {"from": _iso(start), "to": _iso(now)},
        "analysed": analysed,
        "per_day": per_day,
        "positive_rate": _ratio(positive, analysed),
        "baseline_positive_rate": baseline_positive,
        "score_histogram": histogram,
        "jobs": _jobs_figures(conn, model, start, now),
        "time_to_result_s": _time_to_result(conn, model, version, start, now),
        "drift": _drift(conn, config, model, version, start, now),
        "feedback": _agreement(conn, model, version, start, now),
    }


def _scores_by_day(conn: Connection, window: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Studies and positives per day, and the score histogram: one scan of the window, grouped by day and score
    bin (bin -1: no finding)."""
    p = _results.c.max_probability
    day = _day(conn, _results.c.updated_at)
    score_bin = case((p <= 0, -1), (p >= 1, BINS - 1), else_=cast(p * BINS, Integer))
    query = select(day, score_bin, func.count()).where(window).group_by(day, score_bin).order_by(day)
    days: dict[str, dict[str, Any]] = {}
    histogram = [0] * BINS
    for d, k, n in conn.execute(query).all():
        entry = days.setdefault(str(d), {"date": str(d), "analysed": 0, "positive": 0})
        entry["analysed"] += int(n)
        if k >= 0:
            entry["positive"] += int(n)
        histogram[max(int(k), 0)] += int(n)
    return list(days.values()), histogram


def _baseline(config: MonitoringConfig, column: Any, at: Any, mine: Any) -> Any:
    """The baseline rows of a model version: those in the pinned range, else its first baseline_studies."""
    query = select(column).where(mine)
    if config.baseline_from is not None and config.baseline_until is not None:
        return query.where(at >= _naive(config.baseline_from), at < _naive(config.baseline_until))
    return query.order_by(at).limit(config.baseline_studies)


def _baseline_positive_rate(conn: Connection, config: MonitoringConfig, mine: Any) -> float | None:
    first = _baseline(config, _results.c.max_probability, _results.c.updated_at, mine).subquery()
    count, positive = conn.execute(
        select(func.count(), func.sum(case((first.c.max_probability > 0, 1), else_=0)))
    ).one()
    return _ratio(int(positive or 0), int(count))


def _jobs_figures(conn: Connection, model: str, start: datetime, now: datetime) -> dict[str, Any]:
    """Per model (a failed or refused job has no model version: the model was not run to the end)."""
    ended = and_(_jobs.c.model == model, _jobs.c.finished_at >= start, _jobs.c.finished_at <= now)
    counts = dict(conn.execute(select(_jobs.c.state, func.count()).where(ended).group_by(_jobs.c.state)).all())
    done, failed = counts.get(JobState.DONE, 0), counts.get(JobState.FAILED, 0)
    refused = counts.get(JobState.OUT_OF_SCOPE, 0)
    total = done + failed + refused
    return {
        "done": done,
        "failed": failed,
        "out_of_scope": refused,
        "failed_rate": _ratio(failed, total),
        "out_of_scope_rate": _ratio(refused, total),
    }


def _time_to_result(conn: Connection, model: str, version: str, start: datetime, now: datetime) -> dict[str, Any]:
    """Queue wait plus run time of the window's latest CURRENT_SAMPLE finished jobs (their timings), seconds."""
    seconds = _jobs.c.timings["queued_s"].as_float() + _jobs.c.timings["total_s"].as_float()
    done = and_(
        _jobs.c.model == model,
        _jobs.c.model_version == version,
        _jobs.c.state == JobState.DONE,
        _jobs.c.finished_at >= start,
        _jobs.c.finished_at <= now,
    )
    latest = select(seconds.label("s")).where(done).order_by(_jobs.c.finished_at.desc()).limit(CURRENT_SAMPLE)
    sample = latest.subquery().c.s
    within = [func.sum(case((sample <= b, 1), else_=0)) for b in TIME_BUCKETS_S]
    count, mean, longest, *counts = conn.execute(
        select(func.count(sample), func.avg(sample), func.max(sample), *within)
    ).one()
    return {
        "n": int(count or 0),
        "mean": None if mean is None else round(float(mean), 2),
        "max": None if longest is None else round(float(longest), 2),
        "within": {f"{b}s": _ratio(int(c or 0), int(count or 0)) for b, c in zip(TIME_BUCKETS_S, counts, strict=True)},
    }


def _drift(
    conn: Connection, config: MonitoringConfig, model: str, version: str, start: datetime, now: datetime
) -> dict[str, Any]:
    mine = and_(_inputs.c.model == model, _inputs.c.model_version == version)
    baseline = [r[0] for r in conn.execute(_baseline(config, _inputs.c.features, _inputs.c.at, mine)).all()]
    current = [
        r[0]
        for r in conn.execute(
            select(_inputs.c.features)
            .where(mine, _inputs.c.at >= start, _inputs.c.at <= now)
            .order_by(_inputs.c.at.desc())
            .limit(CURRENT_SAMPLE)
        ).all()
    ]
    psi: dict[str, float | None] = {}
    for name in NUMERIC:
        psi[name] = psi_numeric([b.get(name) for b in baseline], [c.get(name) for c in current])
    for name in CATEGORICAL:
        psi[name] = psi_categorical([b.get(name) for b in baseline], [c.get(name) for c in current])
    return {"baseline_n": len(baseline), "current_n": len(current), "psi": psi}


def _agreement(conn: Connection, model: str, version: str, start: datetime, now: datetime) -> dict[str, Any]:
    f = _feedback.c
    window = and_(f.model == model, f.model_version == version, f.at >= start, f.at <= now)
    day = _day(conn, f.at)
    counts = {Verdict.AGREE: 0, Verdict.DISAGREE: 0, Verdict.UNSURE: 0}
    days: dict[str, dict[str, Any]] = {}
    query = select(day, f.verdict, func.count()).where(window).group_by(day, f.verdict).order_by(day)
    for d, verdict, n in conn.execute(query).all():  # one scan: the totals and each day's
        counts[verdict] = counts.get(verdict, 0) + int(n)
        entry = days.setdefault(str(d), {"date": str(d), "agree": 0, "verdicts": 0})
        entry["verdicts"] += int(n)
        if verdict == Verdict.AGREE:
            entry["agree"] += int(n)
    agree, disagree, unsure = (counts[v] for v in (Verdict.AGREE, Verdict.DISAGREE, Verdict.UNSURE))
    return {
        "agree": agree,
        "disagree": disagree,
        "unsure": unsure,
        # readers judge flags, so agreement (agree / (agree + disagree), as dicomnode_ai_agreement_ratio) is the
        # PPV estimate; unsure verdicts count in neither
        "agreement_rate": _ratio(agree, agree + disagree),
        "agreement_ci95": wilson(agree, agree + disagree),
        "per_day": list(days.values()),
    }


def wilson(successes: int, n: int, z: float = 1.959964) -> list[float] | None:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def _day(conn: Connection, column: Any) -> Any:
    """The UTC date of a timestamp column; SQLite keeps ISO text, whose first 10 characters are the date (twice as
    fast as its date() over 100,000 rows)."""
    return func.substr(column, 1, 10) if conn.dialect.name == "sqlite" else func.date(column)


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _naive(when: datetime) -> datetime:
    """The catalog keeps naive UTC."""
    return when.astimezone(UTC).replace(tzinfo=None) if when.tzinfo else when


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds") + "Z"
