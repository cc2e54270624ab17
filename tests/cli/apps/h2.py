"""Workflows for the issue-13 command tests (show, tree, events, bulk
actions, hints): a family with children, retried steps and logs, events,
and work on a queue nobody serves."""

from __future__ import annotations

import time
from pathlib import Path

import wf

unserved = wf.Queue("h2_unserved")

_tries: dict[str, int] = {}


@wf.step(retries=3, interval=0.01)
def flaky(label: str) -> str:
    """Fails on its first attempt, succeeds on the second."""
    _tries[label] = _tries.get(label, 0) + 1
    if _tries[label] < 2:
        raise RuntimeError(f"{label}: first try fails")
    return f"{label} ok"


@wf.step()
def double(n: int) -> int:
    wf.logger.info("doubling %d", n)
    return n * 2


@wf.workflow()
def kid(n: int) -> int:
    wf.logger.info("kid %d", n)
    return double(n)


@wf.workflow()
def family(n: int = 2) -> dict[str, object]:
    """A step, a retried step, n children started with wf.start, one called
    directly (with a grandchild), and a dozen log lines."""
    for i in range(12):
        wf.logger.info("line %d", i)
    first = double(n)
    again = flaky("family")
    handles = [wf.start(kid, i) for i in range(n)]
    direct = nest(1)
    return {
        "first": first,
        "again": again,
        "kids": [h.result() for h in handles],
        "direct": direct,
    }


@wf.workflow()
def nest(depth: int) -> int:
    """A chain of ``depth`` children below this one."""
    if depth <= 0:
        return 0
    return nest(depth - 1) + 1


@wf.step()
def exists(path: str) -> bool:
    return Path(path).exists()


@wf.workflow()
def gated(path: str) -> str:
    """Polls durably until ``path`` exists."""
    while not exists(path):
        wf.sleep(0.1)
    return "opened"


@wf.workflow()
def publisher(path: str) -> str:
    """Publishes "stage" at once, "result" once ``path`` exists."""
    wf.set_event("stage", "waiting")
    wf.set_event("none", None)
    while not exists(path):
        wf.sleep(0.1)
    wf.set_event("result", {"ok": True})
    return "published"


@wf.workflow()
def fan_out(n: int) -> list[int]:
    """Enqueues n children on a queue no test worker serves, and waits."""
    handles = [unserved.enqueue(kid, i) for i in range(n)]
    return [h.result() for h in handles]


@wf.workflow()
def slow_family(path: str) -> int:
    """Runs a child, then waits for ``path``: a live view has time to draw."""
    got = kid(3)
    while not exists(path):
        wf.sleep(0.1)
    time.sleep(0.2)
    return got
