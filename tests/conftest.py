from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from dicomnode.catalog.db import open_catalog
from tests.helpers import NodeProcess, node_sections


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start `dicomnode serve` subprocesses; each is stopped at teardown."""
    started: list[NodeProcess] = []

    def _start(preexec: Callable[[], None] | None = None, **overrides: dict[str, Any]) -> NodeProcess:
        node = NodeProcess(tmp_path, node_sections(tmp_path, **overrides), preexec=preexec)
        started.append(node.start())
        return node

    yield _start
    for node in started:
        if node.alive():
            node.stop()


@pytest.fixture
def node(start_node: Callable[..., NodeProcess]) -> NodeProcess:
    return start_node()


@pytest.fixture
def catalog(node: NodeProcess) -> Engine:
    return open_catalog(node.catalog_url)
