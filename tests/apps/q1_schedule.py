"""A schedule that ticks every second, for the outage test in
tests/reliability/test_queue_faults.py (never imported by the test process:
its schedule would tick there)."""

from __future__ import annotations

import os
from datetime import datetime

import wf

from tests.apps.comm_common import mark


@wf.step()
def ran(tick: str) -> int:
    mark(f"ran {tick} {os.getpid()}")
    return os.getpid()


@wf.scheduled("* * * * * *")
@wf.workflow()
def each_second(scheduled_at: datetime, started_at: datetime) -> int:
    return ran(wf.workflow_id())
