"""Workflows for tests/reliability/test_failover.py, run in subprocesses.

Each step body appends ``<step> <i> start|end <pid>`` to the file named by
WF_TEST_MARKERS (one O_APPEND write per line), so the test counts who ran what.

- ``held(i)``: the step ``hold`` blocks until the file WF_TEST_RELEASE exists
  (so the process can be killed or frozen inside it), then the step ``after``.
- ``slow_wf(seconds)``: one step that sleeps a long time while its process
  stays healthy (heartbeats go on).

``python -m tests.apps.chaos_failover hold PREFIX N`` launches wf, starts
``held(i)`` for i < N under IDs ``PREFIX<i>`` in the background and waits
for ever (the test kills or freezes it)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import wf

from tests.apps.comm_common import mark


@wf.step()
def hold(i: int) -> int:
    mark(f"hold {i} start {os.getpid()}")
    release = Path(os.environ["WF_TEST_RELEASE"])
    while not release.exists():
        time.sleep(0.02)
    mark(f"hold {i} end {os.getpid()}")
    return os.getpid()


@wf.step()
def after(i: int) -> int:
    mark(f"after {i} start {os.getpid()}")
    return os.getpid()


@wf.workflow()
def held(i: int) -> dict[str, int]:
    return {"hold": hold(i), "after": after(i)}


@wf.step()
def slow(seconds: float) -> int:
    mark(f"slow 0 start {os.getpid()}")
    time.sleep(seconds)
    mark(f"slow 0 end {os.getpid()}")
    return os.getpid()


@wf.workflow()
def slow_wf(seconds: float) -> dict[str, int]:
    return {"slow": slow(seconds), "after": after(0)}


def main(argv: list[str]) -> int:
    command, prefix, n = argv
    assert command == "hold"
    wf.launch()
    for i in range(int(n)):
        wf.start(held, i, workflow_id=f"{prefix}{i}")
    while True:
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
