"""The tree shows the flow: one folder per stage, a thin top level, and the node never importing workers."""

from __future__ import annotations

import ast

from tests.support.helpers import REPO_ROOT

STAGES = [
    "dicom",
    "receive",
    "assembly",
    "routing",
    "jobs",
    "analysis",
    "results",
    "export",
    "worklist",
    "api",
    "catalog",
    "ops",
    "config",
    "cli",
]


def _imports(path) -> list[str]:  # noqa: ANN001
    tree = ast.parse(path.read_text())
    names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    return names + [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0]


def test_dicomnode_never_imports_workers() -> None:
    offenders = [
        (str(p.relative_to(REPO_ROOT)), name)
        for p in (REPO_ROOT / "dicomnode").rglob("*.py")
        for name in _imports(p)
        if name == "workers" or name.startswith("workers.")
    ]
    assert offenders == []


def test_a_thin_top_level_and_a_documented_folder_per_stage() -> None:
    top = sorted(p.name for p in (REPO_ROOT / "dicomnode").glob("*.py"))
    assert len(top) <= 6, top
    for stage in STAGES:
        init = REPO_ROOT / "dicomnode" / stage / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.splitlines()) <= 5, f"{stage}/__init__.py needs a docstring saying its role"


def test_no_test_module_imports_another() -> None:
    offenders = [
        (str(p.relative_to(REPO_ROOT)), name)
        for p in (REPO_ROOT / "tests").rglob("*.py")
        for name in _imports(p)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith("test_")
    ]
    assert offenders == []
