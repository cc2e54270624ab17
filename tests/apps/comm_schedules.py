"""A schedule that ticks every second (croniter's sixth field is seconds),
for tests/integration/test_schedules.py. Never import this module in the test
process: its schedule would start ticking in any executor launched there."""

from __future__ import annotations

import os
from datetime import datetime

import wf

from tests.apps.comm_common import mark


@wf.step()
def ran(tick: str, scheduled_at: datetime) -> int:
    mark(f"ran {tick} {os.getpid()} {scheduled_at.isoformat()}")
    return os.getpid()


@wf.scheduled("* * * * * *")
@wf.workflow()
def every_second(scheduled_at: datetime, started_at: datetime) -> dict[str, object]:
    pid = ran(wf.workflow_id(), scheduled_at)
    return {"pid": pid, "scheduled_at": scheduled_at, "started_at": started_at}
