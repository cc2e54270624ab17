"""Workflows of the issue-15 audit tests: a step that waits at a gate file
(so a forced delete finds it running) and writes what a run may write from
inside a step (an event, a log line)."""

from __future__ import annotations

import os
import time

import wf


@wf.step()
def nap(n: int, gate: str) -> int:
    if n:
        open(gate + ".in", "w").close()  # noqa: SIM115 - the test waits for it
        while not os.path.exists(gate):
            time.sleep(0.05)
    wf.set_event("napped", n)
    wf.logger.info("slept %d", n)
    if n:
        wf.logger.info("late %d", n)  # a key the new run's lines do not take
        open(gate + ".out", "w").close()  # noqa: SIM115
    return n


@wf.workflow()
def job(n: int, gate: str = "") -> int:
    wf.logger.info("job %d", n)
    return nap(n, gate)


@wf.step()
def where() -> str:
    return os.environ.get("WF_APP_VERSION", "-")


@wf.workflow()
def waiter(gate: str = "") -> str:
    """Returns the version of the process that ran its step; with a gate,
    waits for it (a process killed meanwhile leaves it PENDING)."""
    if gate:
        open(gate + ".in", "w").close()  # noqa: SIM115
        while not os.path.exists(gate):
            time.sleep(0.05)
    return where()


@wf.workflow()
def streamer() -> int:
    """Two streams: "out" written and closed, "open" written only."""
    wf.write_stream("out", 1)
    wf.write_stream("out", {"a": [2]})
    wf.close_stream("out")
    wf.write_stream("open", "x")
    return 3
