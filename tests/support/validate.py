"""dciodvfy (dicom3tools) on every object we produce."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.helpers import require_tool


def validate(path: Path) -> None:
    """dciodvfy (dicom3tools) must report no errors."""
    out = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
    assert errors == [], f"{path.name}: {errors}"
