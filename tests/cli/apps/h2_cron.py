"""A cron schedule for `wf schedule list` (a worker records it when it starts)."""

from __future__ import annotations

import wf


@wf.scheduled("*/5 * * * *")
@wf.workflow()
def every_five(scheduled_at: object, started_at: object) -> str:
    return "tick"


@wf.scheduled("0 3 * * 1")
@wf.workflow()
def weekly(scheduled_at: object, started_at: object) -> str:
    return "weekly"
