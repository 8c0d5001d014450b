from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from dicomnode.catalog.db import open_catalog
from tests.support.browser import chromium
from tests.support.helpers import NodeProcess, PostgresCluster, node_sections
from tests.support.pipeline import RedisServer, WorkerProcess


@pytest.fixture
def start_node(tmp_path: Path) -> Iterator[Callable[..., NodeProcess]]:
    """Start `dicomnode serve` subprocesses; each is stopped at teardown."""
    started: list[NodeProcess] = []

    def _start(
        preexec: Callable[[], None] | None = None, env: dict[str, str] | None = None, **overrides: dict[str, Any]
    ) -> NodeProcess:
        node = NodeProcess(tmp_path, node_sections(tmp_path, **overrides), preexec=preexec, env=env or {})
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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    # Not under pytest's tmp root: that is private to us, and PostgreSQL runs as `postgres`.
    directory = Path(tempfile.mkdtemp(prefix="dicomnode-pg-"))
    cluster = PostgresCluster(directory)
    url = cluster.start()
    yield url
    cluster.stop()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_catalog(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An empty catalog on each supported database."""
    if request.param == "sqlite":
        engine = open_catalog("sqlite://")
    else:
        from sqlalchemy import text

        base = request.getfixturevalue("postgres_url")
        admin = open_catalog(base)
        name = f"t_{request.node.name.split('[')[0][-40:].lower()}"
        with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        engine = open_catalog(base.rsplit("/", 1)[0] + "/" + name)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real redis-server on a free port, configured as production should be (noeviction)."""
    server = RedisServer(tmp_path / "redis")
    yield server.start()
    server.stop()


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start `dicomnode worker` subprocesses (real Celery workers); each is killed at teardown."""
    started: list[WorkerProcess] = []

    def _start(node: NodeProcess, *args: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = WorkerProcess(tmp_path / f"worker{len(started)}.log", node.workdir / "dicomnode.toml", args, env or {})
        started.append(worker.start())
        return worker

    yield _start
    for worker in started:
        worker.kill()


@pytest.fixture
def browser() -> Iterator[Any]:
    """Real headless Chromium, quit at teardown."""
    yield from chromium()
