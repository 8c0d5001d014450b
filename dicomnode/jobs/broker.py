"""The Celery settings the node (producer) and the workers (consumers) must agree on. No workers import."""

from __future__ import annotations

from typing import Any

from dicomnode.config.analysis import AnalysisConfig

ANALYZE_TASK = "dicomnode.analyze"  # the node hands work over by this name only


def celery_settings(policy: AnalysisConfig) -> dict[str, Any]:
    return {
        "broker_url": policy.broker_url,
        "result_backend": policy.result_backend,
        "task_ignore_result": policy.result_backend is None,  # job state lives in the catalog
        "task_serializer": "json",
        "accept_content": ["json"],
        # A job is acknowledged when it ends, and handed back when its worker process dies.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "broker_transport_options": {
            # Above the longest job, or Redis hands a running job to a second worker.
            "visibility_timeout": policy.visibility_timeout_s,
            # Priority 0 is served first; PriorityClass uses the default steps 0, 3, 6, 9.
            "queue_order_strategy": "priority",
        },
        "broker_connection_retry_on_startup": True,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }
