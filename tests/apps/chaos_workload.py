"""The chaos test's workload (tests/chaos/test_chaos.py), served by ``wf worker``
processes that the test SIGKILLs and restarts while it stops and starts Postgres.

``job(i, peer, prefix, n_msgs)`` is one workflow of a pair (``peer = i ^ 1``):

1. publishes the event ``ready`` = i, and logs one durable line;
2. runs the step ``work_a`` (sleeps a while: crashes land inside steps);
3. posts ledger entry 1 (a transaction: a UNIQUE-keyed ledger row plus a
   per-workflow counter, so a second commit would either fail or show);
4. sends ``n_msgs`` messages to its peer and receives ``n_msgs`` from it;
5. reads its peer's ``ready`` event; sleeps durably; runs ``work_b``;
6. posts ledger entry 2 and publishes ``done``.

Every step body run appends ``start``/``end`` lines with a fresh token to the
file named by WF_TEST_MARKERS (one O_APPEND write each), and returns the token;
the recorded output must be the token of a run that ended."""

from __future__ import annotations

import os
import random
import time
import uuid
from typing import Any

import sqlalchemy as sa
import wf

from tests.apps.comm_common import mark

QUEUE = wf.Queue("chaos", concurrency=24, worker_concurrency=8)

LEDGER_DDL = (
    "CREATE TABLE IF NOT EXISTS chaos_ledger ("
    " workflow_id TEXT NOT NULL, entry INTEGER NOT NULL, PRIMARY KEY (workflow_id, entry))",
    "CREATE TABLE IF NOT EXISTS chaos_counts (workflow_id TEXT PRIMARY KEY, n INTEGER NOT NULL)",
)


def _work(name: str, low: float, high: float) -> str:
    wid = wf.workflow_id()
    token = uuid.uuid4().hex[:12]
    mark(f"start {wid} {name} {token} {os.getpid()}")
    time.sleep(random.uniform(low, high))
    mark(f"end {wid} {name} {token} {os.getpid()}")
    return token


@wf.step(retries=0)
def work_a() -> str:
    return _work("work_a", 0.5, 2.0)


@wf.step(retries=0)
def work_b() -> str:
    return _work("work_b", 0.3, 1.5)


@wf.transaction(isolation="read_committed")
def post(workflow_id: str, entry: int) -> int:
    conn = wf.db()
    conn.execute(
        sa.text("INSERT INTO chaos_ledger (workflow_id, entry) VALUES (:w, :e)"),
        {"w": workflow_id, "e": entry},
    )
    return int(
        conn.execute(
            sa.text(
                "INSERT INTO chaos_counts (workflow_id, n) VALUES (:w, 1) "
                "ON CONFLICT (workflow_id) DO UPDATE SET n = chaos_counts.n + 1 RETURNING n"
            ),
            {"w": workflow_id},
        ).scalar_one()
    )


@wf.workflow()
def job(i: int, peer: int, prefix: str, n_msgs: int) -> dict[str, Any]:
    me = wf.workflow_id()
    peer_id = f"{prefix}{peer}"
    wf.set_event("ready", i)
    wf.logger.info("job %s begins", me)
    a = work_a()
    n1 = post(me, 1)
    for k in range(n_msgs):
        wf.send(peer_id, {"from": i, "k": k}, topic="pair")
    got = [wf.recv(topic="pair", timeout=150) for _ in range(n_msgs)]
    peer_ready = wf.get_event(peer_id, "ready", timeout=150)
    wf.sleep(0.2)
    b = work_b()
    n2 = post(me, 2)
    wf.set_event("done", True)
    return {
        "i": i,
        "got": got,
        "peer_ready": peer_ready,
        "tokens": {"work_a": a, "work_b": b},
        "counts": [n1, n2],
    }
