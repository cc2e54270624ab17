"""@wf.scheduled: declares a cron-driven workflow (the worker's cron loop,
``wf._worker.cron``, starts its ticks)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ._errors import ConfigurationError
from ._registry import declared_schedules, schedules_changed

log = logging.getLogger("wf")


def scheduled(cron: str) -> Callable[[Any], Any]:
    """Run the decorated workflow ``fn(scheduled_at, started_at)`` on a cron schedule."""
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ConfigurationError(f"invalid cron expression {cron!r}")

    def deco(fn: Any) -> Any:
        if getattr(fn, "wf_kind", None) != "workflow":
            raise ConfigurationError("@wf.scheduled goes above @wf.workflow")
        declared_schedules.append((cron, fn))
        schedules_changed.set()
        return fn

    return deco
