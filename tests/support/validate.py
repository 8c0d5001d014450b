"""dciodvfy (dicom3tools) on every object we produce."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.support.helpers import require_tool

_PRIVATE_SCHEME = "Unrecognized defined term <99"


def validate(path: Path, warnings: bool = False) -> None:
    """dciodvfy (dicom3tools) must report no errors, and no warnings unless `warnings` allows them."""
    out = subprocess.run([require_tool("dciodvfy"), str(path)], capture_output=True, text=True, check=False)
    kinds = ("Error",) if warnings else ("Error", "Warning")
    errors = [
        line
        for line in (out.stdout + out.stderr).splitlines()
        if line.startswith(kinds) and _PRIVATE_SCHEME not in line  # "99..." schemes are local by definition
    ]
    assert errors == [], f"{path.name}: {errors}"
