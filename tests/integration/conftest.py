"""Shared fixtures of the integration tests: a migrated SystemDatabase on each
backend, and those of the queue tests that run real worker processes
(tests/apps/comm_worker.py), where the test process only enqueues and observes.

A test module using ``workers`` names the app its workers serve in ``MODULE``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wf
from wf._sysdb import SystemDatabase

from tests.apps.comm_worker import spawn_workers, stop_workers


@pytest.fixture
def db(db_url: str) -> Iterator[SystemDatabase]:
    """wf's system database, migrated, on each backend (no executor)."""
    d = SystemDatabase(db_url)
    d.ensure_reachable()
    d.migrate()
    yield d
    d.dispose()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


@pytest.fixture
def enqueuer(db_url: str) -> Iterator[str]:
    """wf launched in the test process only to enqueue and observe: it serves
    no queue and adopts nothing (``queues=[], recovery=False``)."""
    wf.launch(database_url=db_url, queues=[], recovery=False)
    yield db_url
    wf.shutdown()


@pytest.fixture
def workers(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, markers: Path
) -> Iterator[Any]:
    """``workers(n)`` starts n worker processes serving the test module's
    ``MODULE`` (stopped after the test)."""
    module = request.module.MODULE
    procs: list[Any] = []

    def start(n: int) -> list[Any]:
        new = spawn_workers(module, db_url, tmp_path, n, env={"WF_TEST_MARKERS": str(markers)})
        procs.extend(new)
        return new

    yield start
    for r in stop_workers(procs):
        # a worker that crashed by itself (not killed by a test) is a failure
        assert r.returncode in (0, -9), r.describe()
