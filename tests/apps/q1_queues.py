"""Queues and workflows for tests/integration/test_queue_promises.py and
tests/reliability/test_queue_faults.py, served by tests.apps.comm_worker
processes. ``held``'s step appends ``start TAG PID TIME`` and ``end TAG PID
TIME`` to WF_TEST_MARKERS; WF_TEST_HOLD (seconds) overrides how long it holds
in the process that has it set (a worker about to be killed)."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import wf

from tests.apps.comm_common import kill_point, mark

SINGLE = wf.Queue("q1_single", concurrency=1)
RATED = wf.Queue("q1_rated", rate_limit=(3, 8.0))
DOOMED = wf.Queue("q1_doomed")
TIMED = wf.Queue("q1_timed")


@wf.step()
def hold(tag: str, seconds: float) -> int:
    seconds = float(os.environ.get("WF_TEST_HOLD", seconds))
    mark(f"start {tag} {os.getpid()} {time.time()!r}")
    time.sleep(seconds)
    mark(f"end {tag} {os.getpid()} {time.time()!r}")
    return os.getpid()


@wf.workflow()
def held(tag: str, seconds: float) -> dict[str, Any]:
    pid = hold(tag, seconds)
    return {"tag": tag, "pid": pid}


@wf.step()
def die() -> None:
    mark(f"run {os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)  # never reached


@wf.workflow(max_recovery_attempts=1)
def doomed() -> str:
    """Kills its worker every time it runs."""
    die()
    return "survived"


@wf.step()
def tick(i: int) -> int:
    time.sleep(0.2)
    mark(f"tick {i} {os.getpid()} {time.time()!r}")
    if i == 5:
        kill_point("tick5")
    return i


@wf.workflow()
def ticking(n: int) -> int:
    """n short steps; with WF_TEST_KILL_AT=tick5 its worker dies at step 6."""
    return sum(tick(i) for i in range(n))
