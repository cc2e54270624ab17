"""The cron loop: starts each tick of the declared schedules. Each tick's
workflow ID is derived from the function and the tick time, so with many
processes up a tick still runs once. Ticks missed while nothing ran are not
replayed; ticks that came due while the scheduler was running but could not
start them (a database outage, which starting waits out) are started
afterwards, each once, up to the last ``CATCH_UP`` of them."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .._core.starting import start_workflow
from .._registry import declared_schedules, schedules_changed

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("wf")

# at most this many past ticks of one schedule are started after an outage
CATCH_UP = 100


def start_scheduler(ex: Executor) -> None:
    t = threading.Thread(target=_loop, args=(ex,), name="wf-schedules", daemon=True)
    t.start()
    ex._threads.append(t)


def tick_id(fn: Any, tick: datetime) -> str:
    return f"sched-{fn.wf_name}-{tick.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def _loop(ex: Executor) -> None:
    from croniter import croniter

    nexts: dict[int, datetime] = {}
    recorded = 0  # how many of the declared schedules are recorded for tools
    while not ex.stopping.is_set():
        schedules_changed.clear()
        if recorded < len(declared_schedules):
            recorded = _record_declared(ex, recorded)
        now = datetime.now(UTC)
        soonest = 60.0
        for i, (cron, fn) in enumerate(list(declared_schedules)):
            nxt = nexts.get(i)
            if nxt is None:
                nxt = nexts[i] = croniter(cron, now).get_next(datetime)
            if nxt <= now:
                try:
                    start_workflow(
                        ex, fn.wf_spec, (nxt, datetime.now(UTC)), {}, workflow_id=tick_id(fn, nxt)
                    )
                    ex.sysdb.schedule_ticked(fn.wf_name, int(nxt.timestamp() * 1000))
                except Exception as e:
                    log.warning("wf schedule %s: %s", fn.wf_name, e)
                # the tick after this one, not after now: a start that waited
                # out an outage is followed by the ticks that came due meanwhile
                nxt = nexts[i] = _after(cron, nxt, datetime.now(UTC))
            soonest = min(soonest, (nxt - now).total_seconds())
        if ex.stopping.wait(max(0.01, soonest)) or schedules_changed.is_set():
            continue
    time.sleep(0)


def _record_declared(ex: Executor, done: int) -> int:
    """Record the schedules declared since the last call (``wf schedule list``
    reads them); returns how many are recorded. A failure is retried later."""
    todo = list(declared_schedules)
    try:
        ex.sysdb.record_schedules([(fn.wf_name, fn.wf_name, cron) for cron, fn in todo[done:]])
    except Exception as e:
        log.warning("wf schedules: cannot record the declared schedules yet: %s", e)
        return done
    return len(todo)


def _after(cron: str, tick: datetime, now: datetime) -> datetime:
    """The tick of ``cron`` after ``tick``, but none older than the last
    ``CATCH_UP`` ticks due by ``now``."""
    from croniter import croniter

    nxt: datetime = croniter(cron, tick).get_next(datetime)
    if nxt <= now:
        back = croniter(cron, now)
        oldest = now
        for _ in range(CATCH_UP):
            oldest = back.get_prev(datetime)
            if oldest <= nxt:
                return nxt
        log.warning("wf schedule: skipping ticks before %s (more than %d behind)", oldest, CATCH_UP)
        return oldest
    return nxt
