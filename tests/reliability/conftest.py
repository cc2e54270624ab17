"""Fixtures of the reliability tests: a private Postgres cluster (started on a
free port in a temp dir, never the shared server) that tests may stop and
start, and a fresh database on it per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.helpers import skip_unless_ci
from tests.reliability.pgcluster import PgCluster, available


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PgCluster]:
    why = available()
    if why is not None:
        skip_unless_ci(f"cannot start a private Postgres cluster: {why}")
    cluster = PgCluster()
    try:
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def private_db(private_pg: PgCluster) -> str:
    """A fresh database on the private cluster (which is up at the start)."""
    if not private_pg.is_running():
        private_pg.start()
    return private_pg.create_database(f"wf_r_{uuid.uuid4().hex[:12]}")
