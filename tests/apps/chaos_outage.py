"""Workflows for tests/reliability/test_connection_loss.py: every kind of
recorded call in a loop, so a database outage lands on each of them.

``mixed(n)`` runs, n times: a step (marks ``tick <wid> <k> start <pid>`` in
WF_TEST_MARKERS), a transaction (a UNIQUE-keyed ``outage_ledger`` row), a
message to itself and its receipt, and an event. Returns sum(range(n))."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
import wf

from tests.apps.comm_common import mark

QUEUE = wf.Queue("outage", worker_concurrency=4)

LEDGER_DDL = (
    "CREATE TABLE IF NOT EXISTS outage_ledger ("
    " workflow_id TEXT NOT NULL, k INTEGER NOT NULL, PRIMARY KEY (workflow_id, k))"
)


@wf.step(retries=0)
def tick(k: int) -> int:
    mark(f"tick {wf.workflow_id()} {k} start {os.getpid()}")
    time.sleep(float(os.environ.get("WF_TEST_TICK", "0.05")))
    return k


@wf.transaction(isolation="read_committed")
def post(workflow_id: str, k: int) -> int:
    wf.db().execute(
        sa.text("INSERT INTO outage_ledger (workflow_id, k) VALUES (:w, :k)"),
        {"w": workflow_id, "k": k},
    )
    return k


@wf.workflow()
def mixed(n: int) -> int:
    me = wf.workflow_id()
    total = 0
    for k in range(n):
        total += tick(k)
        post(me, k)
        wf.send(me, k, topic="self")
        got = wf.recv(topic="self", timeout=120)
        if got != k:
            raise RuntimeError(f"received {got!r}, expected {k}")
        wf.set_event("k", k)
    return total
