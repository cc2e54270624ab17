"""Workflows for stored schedules (wf.create_schedule), for
tests/integration/test_managed_schedules.py and tests/cli/test_schedule_cli.py.
It declares no schedule, so the test process may import it (to create
schedules of it) without ticking anything.

``report`` marks ``start TICK PID`` and ``end TICK PID`` around its one step;
in a worker started with WF_TEST_KILL_AT=mid-tick the step SIGKILLs the
process between the two (a tick in flight when its worker dies);
SCHED_STEP_SECONDS keeps each tick in flight that long."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

import wf

from tests.apps.comm_common import kill_point, mark


@wf.step()
def work(tick: str) -> int:
    mark(f"start {tick} {os.getpid()}")
    kill_point("mid-tick")
    time.sleep(float(os.environ.get("SCHED_STEP_SECONDS", "0")))
    mark(f"end {tick} {os.getpid()}")
    return os.getpid()


@wf.workflow()
def report(
    scheduled_at: datetime, started_at: datetime, label: str, *, scale: int = 1
) -> dict[str, Any]:
    pid = work(wf.workflow_id())
    return {"pid": pid, "label": label, "scale": scale, "scheduled_at": scheduled_at}


@wf.workflow()
def bare(scheduled_at: datetime, started_at: datetime) -> str:
    return scheduled_at.isoformat()


@wf.step()
def not_a_workflow(scheduled_at: datetime, started_at: datetime) -> None:
    return None
