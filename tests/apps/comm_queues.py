"""Queues and workflows for tests/integration/test_queues.py, served by
tests.apps.comm_worker processes. Each ``held`` workflow's step appends
``start TAG PID TIME`` and ``end TAG PID TIME`` to WF_TEST_MARKERS so the test
can compute how many ran at once, and in which process."""

from __future__ import annotations

import os
import time
from typing import Any

import wf

from tests.apps.comm_common import mark

LIMITED = wf.Queue("comm_limited", concurrency=3, worker_concurrency=2)
PER_WORKER = wf.Queue("comm_per_worker", worker_concurrency=2)
RATED = wf.Queue("comm_rated", rate_limit=(3, 1.0))
PRIO = wf.Queue("comm_prio", concurrency=1, priority=True)
FIFO = wf.Queue("comm_fifo", concurrency=1)
PLAIN = wf.Queue("comm_plain")
OTHER = wf.Queue("comm_other")
CRASH = wf.Queue("comm_crash", concurrency=2)
# no global limit: dequeued by the one-statement take (no lock, no transaction)
PRIO_LOCAL = wf.Queue("comm_prio_local", worker_concurrency=1, priority=True)


@wf.step()
def hold(tag: str, seconds: float) -> int:
    mark(f"start {tag} {os.getpid()} {time.time()!r}")
    time.sleep(seconds)
    mark(f"end {tag} {os.getpid()} {time.time()!r}")
    return os.getpid()


@wf.workflow()
def held(tag: str, seconds: float) -> dict[str, Any]:
    pid = hold(tag, seconds)
    return {"tag": tag, "pid": pid}


@wf.step()
def stamp_step(tag: str) -> float:
    now = time.time()
    mark(f"ran {tag} {now!r}")
    return now


@wf.workflow()
def stamp(tag: str) -> float:
    return stamp_step(tag)
