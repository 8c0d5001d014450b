"""Prometheus metrics. Counters of what this process saw on the wire; gauges and the inference histogram are
read from the catalog at scrape time, so they count the work of every process (workers included)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, func, select

from dicomnode.catalog.db import posix_seconds, utcnow
from dicomnode.catalog.schema import Export, Job, ModelAlert, Notification, WorkItem
from dicomnode.catalog.states import OPEN_WORKITEM, JobState, OutboxState, WorkItemState
from dicomnode.worklist import feedback
from dicomnode.worklist.ai_status import AIStatus, status_of
from dicomnode.worklist.feedback import Verdict

disable_created_metrics()  # *_created samples only add noise to a node's counters
INFERENCE_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0)


class NodeMetrics:
    """What the DICOM listener counts; one per node (its own registry, so tests may run several nodes)."""

    def __init__(self, catalog: Engine | None = None) -> None:
        self.registry = CollectorRegistry()
        self.associations = Counter(
            "dicomnode_associations",
            "Connections and association requests, by outcome and (for a rejection) reason.",
            ["outcome", "reason"],
            registry=self.registry,
        )
        self.active_associations = Gauge(
            "dicomnode_associations_active", "Associations open now.", registry=self.registry
        )
        self.instances = Counter(
            "dicomnode_instances_received", "Instances stored (C-STORE success).", registry=self.registry
        )
        self.bytes = Counter("dicomnode_received_bytes", "Bytes of instances stored.", registry=self.registry)
        self.refused = Counter(
            "dicomnode_instances_refused",
            "C-STOREs answered with a failure, by status.",
            ["status"],
            registry=self.registry,
        )
        self.hl7_messages = Counter(
            "dicomnode_hl7_messages",
            "HL7 v2 messages received (in) and sent (out), by type and outcome (the ACK code, or refused, "
            "framing, timeout, unanswered).",
            ["direction", "type", "outcome"],
            registry=self.registry,
        )
        if catalog is not None:
            self.registry.register(CatalogCollector(catalog))


class CatalogCollector(Collector):
    def __init__(self, catalog: Engine) -> None:
        self._catalog = catalog

    def collect(self) -> Iterator[GaugeMetricFamily | HistogramMetricFamily]:
        with self._catalog.connect() as conn:
            jobs = dict(conn.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            exports = dict(conn.execute(select(Export.state, func.count()).group_by(Export.state)).all())
            notes = dict(conn.execute(select(Notification.state, func.count()).group_by(Notification.state)).all())
            items = dict(conn.execute(select(WorkItem.state, func.count()).group_by(WorkItem.state)).all())
            open_items = WorkItem.state.in_(OPEN_WORKITEM)
            per_item = select(status_of(WorkItem.study_fk).label("status")).where(open_items).subquery()
            ai = dict(conn.execute(select(per_item.c.status, func.count()).group_by(per_item.c.status)).all())
            opinions = feedback.agreement(conn)
            alerts = conn.execute(
                select(ModelAlert.model, ModelAlert.model_version, ModelAlert.kind).where(
                    ModelAlert.cleared_at.is_(None)
                )
            ).all()
            oldest = conn.execute(
                select(func.min(WorkItem.arrived_s)).where(WorkItem.state == WorkItemState.SCHEDULED)
            ).scalar()
            infer = Job.timings["infer_s"].as_float()
            done = Job.state == JobState.DONE
            row = conn.execute(
                select(
                    func.count(infer),
                    func.coalesce(func.sum(infer), 0.0),
                    *[func.sum(case((infer <= b, 1), else_=0)) for b in INFERENCE_BUCKETS],
                ).where(done)
            ).one()
        yield _by_state("dicomnode_jobs", "Analysis jobs by state.", jobs, tuple(JobState))
        yield _by_state("dicomnode_exports", "Result sends to PACS by state.", exports, tuple(OutboxState))
        yield _by_state("dicomnode_notifications", "Critical-finding webhooks by state.", notes, tuple(OutboxState))
        yield _by_state("dicomnode_worklist_items", "Worklist items by state.", items, tuple(WorkItemState))
        yield _by_label(
            "dicomnode_worklist_ai_status", "Open worklist items by AI status.", "status", ai, tuple(AIStatus)
        )
        yield from _feedback(opinions)
        alert = GaugeMetricFamily(
            "dicomnode_model_alert",
            "Open model-monitoring alerts (1 per model version and kind; see dicomnode monitor).",
            labels=["model", "model_version", "kind"],
        )
        for model, version, kind in alerts:
            alert.add_metric([model, version, kind], 1)
        yield alert
        age = GaugeMetricFamily(
            "dicomnode_worklist_oldest_waiting_seconds",
            "How long the oldest unclaimed worklist item has waited (0: none).",
        )
        age.add_metric([], max(0.0, posix_seconds(utcnow()) - oldest) if oldest is not None else 0.0)
        yield age
        count, total, *cumulative = row
        buckets = [(str(b), int(c or 0)) for b, c in zip(INFERENCE_BUCKETS, cumulative, strict=True)]
        histogram = HistogramMetricFamily(
            "dicomnode_inference_seconds", "Model inference time of finished jobs (all workers)."
        )
        histogram.add_metric([], [*buckets, ("+Inf", int(count))], float(total))
        yield histogram


def _feedback(opinions: list[tuple[str, str, str, int]]) -> Iterator[GaugeMetricFamily]:
    """Readers' verdicts per model version, and the agreement rate agree / (agree + disagree)."""
    verdicts = GaugeMetricFamily(
        "dicomnode_ai_feedback", "Reader verdicts on AI flags.", labels=["model", "model_version", "verdict"]
    )
    rate = GaugeMetricFamily(
        "dicomnode_ai_agreement_ratio",
        "Readers' agreement with AI flags: agree / (agree + disagree), per model version.",
        labels=["model", "model_version"],
    )
    per_version: dict[tuple[str, str], dict[str, int]] = {}
    for model, version, verdict, count in opinions:
        verdicts.add_metric([model, version, verdict], count)
        per_version.setdefault((model, version), {})[verdict] = count
    for (model, version), counts in sorted(per_version.items()):
        decided = counts.get(Verdict.AGREE, 0) + counts.get(Verdict.DISAGREE, 0)
        if decided:
            rate.add_metric([model, version], counts.get(Verdict.AGREE, 0) / decided)
    yield verdicts
    yield rate


def _by_state(name: str, doc: str, counts: dict[str, int], states: tuple[str, ...]) -> GaugeMetricFamily:
    return _by_label(name, doc, "state", counts, states)


def _by_label(name: str, doc: str, label: str, counts: dict[str, int], values: tuple[str, ...]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=[label])
    for value in values:
        family.add_metric([value], counts.get(value, 0))
    return family
