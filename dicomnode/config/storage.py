"""[storage], [catalog] and [assembly]: where instances and their rows live, and when a study is complete."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dicomnode.config.base import Section


class StorageConfig(Section):
    path: Path = Path("var/storage")
    min_free_bytes: int = Field(
        1024**3, ge=0, description="Refuse new associations and instances below this free space."
    )


class CatalogConfig(Section):
    url: str = Field("sqlite:///var/catalog.sqlite", description="SQLAlchemy database URL.")


class AssemblyConfig(Section):
    study_quiet_seconds: float = Field(10, gt=0)
    poll_seconds: float = Field(1, gt=0)
    release_grace_seconds: float = Field(
        1, ge=0, description="After a complete_on_release peer's release, wait this long before completing."
    )
