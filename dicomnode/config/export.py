"""[export] and [notify]: the two outboxes, results to PACS and critical-finding webhooks."""

from __future__ import annotations

import ssl
from enum import StrEnum
from pathlib import Path

from pydantic import Field, HttpUrl, model_validator

from dicomnode.config.base import RetryPolicy, require_files, require_together


class OutboxPolicy(RetryPolicy):
    """How an outbox (DICOM exports, webhook notifications) retries a send."""

    max_attempts: int = Field(10, ge=1, description="Tries per send before it is dead.")
    retry_backoff_s: float = Field(30, gt=0, description="Delay before the first retry; doubles each time.")
    retry_backoff_max_s: float = Field(3600, gt=0, description="Longest delay between retries.")
    poll_seconds: float = Field(1, gt=0, description="How often the outbox looks for due sends.")


class ResultKind(StrEnum):
    """The kinds of result instance a destination can be sent."""

    SR = "sr"  # TID 1500 measurement report
    SEG = "seg"  # segmentation (segmenting models)
    SC = "sc"  # Secondary Capture key image per finding, what any PACS viewer shows
    GSPS = "gsps"  # Grayscale Softcopy Presentation State: the boxes drawn on the original slices (on request)
    KOS = "kos"  # Key Object Selection flagging the key slices (on request)


DEFAULT_KINDS = [ResultKind.SR, ResultKind.SEG, ResultKind.SC]


class ExportConfig(OutboxPolicy):
    """The outbox that sends results (SR, SEG, key images) to each routing rule's destinations."""

    kinds: list[ResultKind] = Field(
        default_factory=lambda: list(DEFAULT_KINDS), description="The kinds of result every destination gets."
    )
    kinds_by_destination: dict[str, list[ResultKind]] = Field(
        default_factory=dict,
        description="Per destination, as the routing rules write it (AE@HOST:PORT): the kinds it gets instead, "
        "e.g. only key images for a PACS that refuses SR and SEG.",
    )
    timeout_s: float = Field(30, gt=0, description="Association and DIMSE timeout when sending.")
    tls_ca_file: Path | None = Field(None, description="CA bundle that signs tls: destinations; unset: system CAs.")
    tls_cert_file: Path | None = Field(None, description="Our client certificate, for destinations that ask one.")
    tls_key_file: Path | None = Field(None, description="Its private key.")

    @model_validator(mode="after")
    def _tls_files(self) -> ExportConfig:
        require_files(self, "tls_ca_file", "tls_cert_file", "tls_key_file")
        require_together(self, "tls_cert_file", "tls_key_file")
        return self

    def kinds_for(self, destination: str) -> set[ResultKind]:
        return set(self.kinds_by_destination.get(destination, self.kinds))

    def kinds_wanted(self, destinations: list[str]) -> set[ResultKind]:
        """What a result's destinations take between them (`kinds` when it has none: it is still stored)."""
        if not destinations:
            return set(self.kinds)
        return set().union(*(self.kinds_for(d) for d in destinations))

    def tls_context(self) -> ssl.SSLContext:
        """The client context for tls: destinations (TLS 1.2 or later, server certificate verified)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls_cert_file and self.tls_key_file:
            ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return ctx


class NotifyConfig(OutboxPolicy):
    """Critical-finding webhooks: a JSON POST to each URL when the AI flags a study."""

    webhooks: list[HttpUrl] = Field(default_factory=list, description="URLs that receive the POST.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. an Authorization the receiver expects."
    )
    min_urgency: float = Field(
        0.0, ge=0, le=1, description="Notify only findings whose manifest urgency is at least this."
    )
    timeout_s: float = Field(10, gt=0, description="HTTP timeout per POST.")
