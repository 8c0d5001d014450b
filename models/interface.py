"""The interface every model implements, built-in or brought by the user."""

from __future__ import annotations

from typing import Protocol

from models.findings import Finding
from models.image import ImageVolume


class Model(Protocol):
    """A loaded model, ready to run. Loading happens once per worker process."""

    name: str
    version: str

    def predict(self, volume: ImageVolume) -> list[Finding]:
        """Findings for one volume; an empty list when nothing was found."""
        ...
