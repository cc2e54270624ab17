"""Workflows for tests/integration/test_pgbouncer.py, run behind a PgBouncer
in transaction pooling (tests/pgbouncer.py). Every step and transaction
body appends ``<body> start|end TAG PID`` to WF_TEST_MARKERS (one O_APPEND
write a line, tests/apps/comm_common.py), so the test counts how often each
ran and where; each transaction bumps the row TAG of ``wf_test_counters``.

Run as a process (the database URL is an argument, given to ``wf.launch``):

- ``inline URL N PREFIX [THREADS]``: launch on URL, run ``pipeline`` N times
  (IDs ``PREFIX-0``..) from THREADS threads at once (default 16); prints one
  ``OK ID <json>`` or ``FAIL ID <type>: <message>`` line per workflow.
- ``enqueue URL QUEUE FUNCTION N PREFIX``: launch serving no queue and
  adopting nothing, enqueue FUNCTION(TAG) N times on QUEUE (ID = TAG =
  ``PREFIX-i``) and exit; prints ``ENQUEUED N``.
- ``send URL ID MESSAGE [TOPIC]``: ``wf.send`` from outside a workflow.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import wf
from sqlalchemy import text

from tests.apps.comm_common import mark

QUEUE = wf.Queue("pgb_work", worker_concurrency=4)
SLOW = wf.Queue("pgb_slow", concurrency=2)
GATES = wf.Queue("pgb_gates")


def _mark(body: str, phase: str, tag: str) -> None:
    mark(f"{body} {phase} {tag} {os.getpid()}")


@wf.step()
def first(tag: str) -> str:
    _mark("first", "start", tag)
    _mark("first", "end", tag)
    return tag.upper()


@wf.transaction()
def bump(tag: str) -> int:
    _mark("bump", "start", tag)
    db = wf.db()
    n = db.execute(
        text(
            "INSERT INTO wf_test_counters (name, n) VALUES (:t, 1) "
            "ON CONFLICT (name) DO UPDATE SET n = wf_test_counters.n + 1 RETURNING n"
        ),
        {"t": tag},
    ).scalar_one()
    _mark("bump", "end", tag)
    return int(n)


@wf.step()
def hold(tag: str, seconds: float) -> int:
    """A step that takes a while: the test SIGKILLs the process inside it."""
    _mark("hold", "start", tag)
    time.sleep(seconds)
    _mark("hold", "end", tag)
    return os.getpid()


@wf.step()
def second(tag: str) -> str:
    _mark("second", "start", tag)
    _mark("second", "end", tag)
    return tag + "!"


@wf.workflow()
def pipeline(tag: str) -> dict[str, Any]:
    a = first(tag)
    n = bump(tag)
    b = second(tag)
    return {"tag": tag, "a": a, "n": n, "b": b, "pid": os.getpid()}


@wf.workflow()
def slow_pipeline(tag: str) -> dict[str, Any]:
    a = first(tag)
    n = bump(tag)
    pid = hold(tag, float(os.environ.get("WF_TEST_HOLD_S", "1.0")))
    b = second(tag)
    return {"tag": tag, "a": a, "n": n, "b": b, "pid": pid}


@wf.workflow()
def gate(tag: str) -> str:
    """Waits for a message on topic ``go``, then ends with it."""
    first(tag)
    msg = wf.recv(topic="go", timeout=300)
    return f"{tag} got {msg}"


@wf.workflow()
def mailbox(tag: str, n: int) -> list[Any]:
    """Receives n messages on topic ``m`` (FIFO)."""
    got = [wf.recv(topic="m", timeout=300) for _ in range(n)]
    second(tag)
    return got


def _inline(url: str, n: int, prefix: str, threads: int) -> int:
    wf.launch(database_url=url)
    lock = threading.Lock()

    def run(i: int) -> None:
        wid = f"{prefix}-{i}"
        try:
            with wf.set_workflow_id(wid):
                out = pipeline(wid)
        except BaseException as e:  # noqa: BLE001 - report every outcome
            line = f"FAIL {wid} {type(e).__name__}: {str(e).strip().splitlines()[:1]}"
        else:
            line = f"OK {wid} {wf_json(out)}"
        with lock:
            print(line, flush=True)

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            list(pool.map(run, range(n)))
    finally:
        wf.shutdown()
    return 0


def wf_json(value: Any) -> str:
    from wf._serialization import dumps

    return str(dumps(value))


def main(argv: list[str]) -> int:
    command, url, *rest = argv
    if command == "inline":
        n, prefix, *threads = rest
        return _inline(url, int(n), prefix, int(threads[0]) if threads else 16)
    if command == "enqueue":
        queue_name, func, n, prefix = rest
        queue = {q.name: q for q in (QUEUE, SLOW, GATES)}[queue_name]
        fn = globals()[func]
        wf.launch(database_url=url, queues=[], recovery=False)
        try:
            for i in range(int(n)):
                tag = f"{prefix}-{i}"
                queue.enqueue(fn, tag, workflow_id=tag)
        finally:
            wf.shutdown()
        print(f"ENQUEUED {n}", flush=True)
        return 0
    if command == "send":
        wid, message, *topic = rest
        wf.configure(database_url=url)
        wf.send(wid, message, topic=topic[0] if topic else None)
        print("SENT", flush=True)
        return 0
    print(f"unknown command {command!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
