"""What every configuration section shares: unknown keys refused, AE titles checked, files that must exist,
and the one retry rule."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

ENV_PREFIX = "DICOMNODE_"
AETitle = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[\x20-\x5b\x5d-\x7e]*\S[\x20-\x5b\x5d-\x7e]*$")]


def _networks(values: list[str]) -> list[str]:
    for value in values:
        ipaddress.ip_network(value, strict=False)  # raises ValueError naming the bad value
    return values


# IP addresses or CIDR networks (an allowlist of senders)
Networks = Annotated[list[str], AfterValidator(_networks)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


def require_files(section: BaseModel, *keys: str) -> None:
    """Every key of `keys` that is set must name an existing file (TLS certificates, keys and CA bundles)."""
    for key in keys:
        path: Path | None = getattr(section, key)
        if path is not None and not path.is_file():
            raise ValueError(f"{key}: file not found: {path}")


def require_together(section: BaseModel, first: str, second: str) -> None:
    if (getattr(section, first) is None) != (getattr(section, second) is None):
        raise ValueError(f"{first} and {second} go together")


class RetryPolicy(Section):
    """Attempts and exponential backoff: the one retry rule of jobs and outboxes."""

    max_attempts: int
    retry_backoff_s: float
    retry_backoff_max_s: float

    def retry_delay_s(self, attempt: int) -> float:
        """Seconds to wait after the given (1-based) attempt failed: doubling from retry_backoff_s, capped."""
        return min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** (attempt - 1))
