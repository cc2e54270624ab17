"""Workflows for tests/reliability/test_primary_failover.py (issue 18): every
kind of recorded call, so a primary failover lands on each of them.

- ``mixed(n)``, n times: a step (``step WID K start|end PID TIME`` in
  WF_TEST_MARKERS), a transaction (one row in ``failover_ledger``, which has
  no unique key: a transaction that committed twice shows as two rows), a
  message to itself and its receipt (a lost one times out, a doubled one is
  received in the next one's place), an event and, every 5th time, a durable
  sleep. Returns sum(range(n)).
- ``source(sink_id, n)`` sends 0..n-1 to ``sink_id`` on topic ``m``, a step
  between two sends; ``sink(n)`` receives n messages there and returns them
  (a lost or doubled message shows in the list).

As a process (``python -m tests.apps.failover_workload inline PREFIX COUNT N``):
launch on WF_DATABASE_URL, run COUNT ``mixed(N)`` inline workflows at once
(IDs PREFIX-0..), one thread each; print ``OK ID <json>`` or ``FAIL ID ...``
per workflow, then ``DONE``; ``await ID...``: launch (serving nothing) and
print ``RESULT ID <json>`` as each workflow ends (a result waiter)."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import sqlalchemy as sa
import wf

from tests.apps.comm_common import mark

QUEUE = wf.Queue("failover", worker_concurrency=4)

LEDGER_DDL = (
    "CREATE TABLE IF NOT EXISTS failover_ledger ("
    " id BIGSERIAL PRIMARY KEY, workflow_id TEXT NOT NULL, k INTEGER NOT NULL)"
)


def _tick() -> float:
    return float(os.environ.get("WF_TEST_TICK", "0.05"))


@wf.step(retries=0)
def tick(k: int) -> int:
    me = wf.workflow_id()
    mark(f"step {me} {k} start {os.getpid()} {time.time():.3f}")
    time.sleep(_tick())
    mark(f"step {me} {k} end {os.getpid()} {time.time():.3f}")
    return k


@wf.transaction(isolation="read_committed")
def post(workflow_id: str, k: int) -> int:
    wf.db().execute(
        sa.text("INSERT INTO failover_ledger (workflow_id, k) VALUES (:w, :k)"),
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
        if k % 5 == 4:
            wf.sleep(0.05)
    return total


@wf.workflow()
def source(sink_id: str, n: int) -> int:
    for k in range(n):
        tick(k)
        wf.send(sink_id, k, topic="m")
    return n


@wf.workflow()
def sink(n: int) -> list[Any]:
    return [wf.recv(topic="m", timeout=240) for _ in range(n)]


@wf.workflow()
def echo(message: str) -> Any:
    """Sends itself ``message`` and receives it (tests/reliability/
    test_primary_failover.py loses the answer to the receipt's commit)."""
    wf.send(wf.workflow_id(), message, topic="echo")
    return wf.recv(topic="echo", timeout=3600)


@wf.transaction(read_only=True)
def sneaky_write(workflow_id: str) -> None:
    """Writes inside a transaction declared READ ONLY: the body's own fault
    (SQLSTATE 25006), never to be waited out as a read-only node."""
    wf.db().execute(
        sa.text("INSERT INTO failover_ledger (workflow_id, k) VALUES (:w, -1)"), {"w": workflow_id}
    )


@wf.workflow()
def writes_in_read_only() -> str:
    try:
        sneaky_write(wf.workflow_id())
    except Exception as e:  # noqa: BLE001 - the outcome is what is checked
        return f"{type(e).__name__}: {str(e).splitlines()[0]}"
    return "written"


def _inline(prefix: str, count: int, n: int) -> int:
    from wf._serialization import dumps

    wf.launch()
    lock = threading.Lock()

    def run(i: int) -> None:
        wid = f"{prefix}-{i}"
        try:
            with wf.set_workflow_id(wid):
                out = mixed(n)
        except BaseException as e:  # noqa: BLE001 - report every outcome
            line = f"FAIL {wid} {type(e).__name__}: {str(e).strip()[:300]}"
        else:
            line = f"OK {wid} {dumps(out)}"
        with lock:
            print(line, flush=True)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print("DONE", flush=True)
    wf.shutdown()
    return 0


def _await(ids: list[str]) -> int:
    """A result waiter in a launched process (no queues, no recovery: it only
    waits): ``RESULT ID <json>`` per workflow once it has ended."""
    from wf._serialization import dumps

    wf.launch(queues=[], recovery=False)
    try:
        for wid in ids:
            print(f"RESULT {wid} {dumps(wf.retrieve(wid).result(timeout=300))}", flush=True)
    finally:
        wf.shutdown()
    return 0


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "inline":
        prefix, count, n = rest
        return _inline(prefix, int(count), int(n))
    if command == "await":
        return _await(rest)
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
