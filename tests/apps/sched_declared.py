"""A worker module for tests/integration/test_managed_schedules.py: a
code-declared schedule ticking every second (``declared``, to pause it
like a stored one) beside the stored schedules' workflows of
tests/apps/sched_app.py. Never import this module in the test process: its
schedule would tick in any executor launched there."""

from __future__ import annotations

from datetime import datetime

import wf

from tests.apps import sched_app  # noqa: F401  (the stored schedules' code)
from tests.apps.comm_common import mark


@wf.scheduled("* * * * * *")
@wf.workflow()
def declared(scheduled_at: datetime, started_at: datetime) -> str:
    mark(f"declared {scheduled_at.isoformat()}")
    return scheduled_at.isoformat()
