"""Critical-finding webhooks: a JSON POST per flagged finding and URL, through the durable outbox.

Rows are armed in the transaction that stores the AI result, one per (result, finding label, URL), so a
re-run of the same model version never notifies twice. The Notifier thread in the node sends them:
2xx is sent; 408, 429, 5xx and network errors are retried with backoff; other 4xx are dead at once (the
receiver refuses the request as it is; `dicomnode notifications retry` re-arms after a fix).
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from dicomnode.catalog.db import insert_for, utcnow
from dicomnode.catalog.schema import Notification, Study
from dicomnode.catalog.states import OutboxState
from dicomnode.config.export import NotifyConfig
from dicomnode.export import outbox
from dicomnode.ops import audit

log = logging.getLogger(__name__)
_notifications = Notification.__table__
_studies = Study.__table__
_RETRYABLE_4XX = {408, 425, 429}


def enqueue(
    conn: Connection, study_pk: int, workitem_uid: str, flags: list[dict[str, Any]], config: NotifyConfig
) -> int:
    """Arm a POST of each flag at or above min_urgency to each webhook; the number armed (new ones only)."""
    if not config.webhooks:
        return 0
    study = conn.execute(
        select(_studies.c.study_instance_uid, _studies.c.accession_number).where(_studies.c.id == study_pk)
    ).one()
    now = utcnow()
    armed = 0
    for flag in flags:
        if flag["urgency"] < config.min_urgency:
            continue
        payload = {
            "event": "critical_finding",
            "study_instance_uid": study.study_instance_uid,
            "accession_number": study.accession_number or "",
            "workitem_uid": workitem_uid,
            "finding": flag["label"],
            "code": flag.get("code"),
            "probability": flag["probability"],
            "urgency": flag["urgency"],
            "model": flag["model"],
            "model_version": flag["model_version"],
            "result_uid": flag["result_uid"],
            "flagged_at": now.isoformat() + "Z",
        }
        armed += _arm(conn, study_pk, flag["result_uid"], flag["label"], payload, config, now)
    return armed


def enqueue_model_alert(
    conn: Connection, study_pk: int, alert_uid: str, payload: dict[str, Any], config: NotifyConfig
) -> int:
    """Arm a `model_alert` POST to each webhook (ops/monitoring/alerts.py); `study_pk`: the latest study the model
    version analysed, so the alert is traced like every other act."""
    return _arm(conn, study_pk, alert_uid, "model_alert", {"event": "model_alert", **payload}, config, utcnow())


def _arm(
    conn: Connection,
    study_pk: int,
    key: str,
    label: str,
    payload: dict[str, Any],
    config: NotifyConfig,
    now: datetime,
) -> int:
    armed = 0
    for url in config.webhooks:
        stmt = (
            insert_for(conn.dialect.name, _notifications)
            .values(
                study_fk=study_pk,
                result_uid=key,
                label=label,
                url=str(url),
                payload=payload,
                state=OutboxState.PENDING,
                attempts=0,
                not_before=now,
                created_at=now,
            )
            .on_conflict_do_nothing(index_elements=["result_uid", "label", "url"])
        )
        armed += conn.execute(stmt).rowcount
    return armed


@dataclass(frozen=True)
class Post:
    id: int
    study_pk: int
    url: str
    payload: dict[str, Any]
    attempt: int


class Notifier(outbox.OutboxSender):
    def __init__(self, catalog: Engine, config: NotifyConfig) -> None:
        super().__init__("notifier", catalog, _notifications, config, config.timeout_s + 5)
        self._config = config

    def send_due(self) -> int:
        c = _notifications.c
        with self._catalog.begin() as conn:
            due = [
                Post(*row)
                for row in outbox.claim_due(conn, _notifications, [c.id, c.study_fk, c.url, c.payload, c.attempts])
            ]
        for post in due:
            status, error = self._post(post)
            with self._catalog.begin() as conn:
                if error is None:
                    outbox.mark_sent(conn, _notifications, post.id, status)
                    audit.record(
                        conn,
                        post.study_pk,
                        f"webhook #{post.id}",
                        "notified",
                        f"{post.payload['finding']} p={post.payload['probability']:.2f}",
                    )
                    log.info("notification sent id=%d attempt=%d status=%d", post.id, post.attempt, status)
                    continue
                permanent = status is not None and 400 <= status < 500 and status not in _RETRYABLE_4XX
                state = outbox.record_failure(
                    conn, _notifications, post.id, post.attempt, error, status, permanent, self._config
                )
            level = logging.ERROR if state == OutboxState.DEAD else logging.WARNING
            # the URL may carry a secret in its query: log the row id, never the URL or the payload
            log.log(
                level,
                "notification id=%d attempt=%d %s: %s",
                post.id,
                post.attempt,
                "dead" if state == OutboxState.DEAD else "will retry",
                error,
            )
        return len(due)

    def _post(self, post: Post) -> tuple[int | None, str | None]:
        """(HTTP status or None when unreached, error or None when accepted)."""
        body = json.dumps(post.payload).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "dicomnode", **self._config.headers}
        request = urllib.request.Request(post.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._config.timeout_s) as response:
                return response.status, None
        except urllib.error.HTTPError as exc:
            return exc.code, f"receiver answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, f"not delivered (receiver unreachable or no answer): {type(reason).__name__}: {reason}"


@dataclass(frozen=True)
class NotificationSummary:
    id: int
    study_instance_uid: str
    label: str
    url: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


def list_notifications(conn: Connection, state: str | None = None, limit: int = 500) -> list[NotificationSummary]:
    n = _notifications.c
    query = (
        select(
            n.id,
            _studies.c.study_instance_uid,
            n.label,
            n.url,
            n.state,
            n.attempts,
            n.last_error,
            n.created_at,
            n.sent_at,
        )
        .join(_studies, _studies.c.id == n.study_fk)
        .order_by(n.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(n.state == state)
    return [NotificationSummary(*row) for row in conn.execute(query)]


def retry_dead(conn: Connection, notification_id: int) -> bool:
    return outbox.retry_dead(conn, _notifications, notification_id)
