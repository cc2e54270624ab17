"""The cron loop: starts each tick of the schedules, code-declared
(``@wf.scheduled``) and stored (``wf.create_schedule``). Each tick's
workflow ID is derived from the schedule's name and the tick time
(``tick_id``), so with many processes up a tick still runs once: every
process tries to start it, the first insert of that ID wins and the others
find it recorded (a tick whose process died mid-run is a PENDING workflow
under that ID, finished by recovery, never started again as a new tick).

Ticks missed while nothing ran are not replayed (``wf.backfill_schedule``
runs them on demand); ticks that came due while the scheduler was running
but could not start them (a database outage, which starting waits out) are
started afterwards, each once, up to the last ``CATCH_UP`` of them.

Stored schedules are read from the database every ``POLL`` seconds (at once
after a change made in this process), so one created, paused or deleted by
another process is picked up within that. Right before starting a tick the
loop reads the schedule's row again: a tick is never started after the
pause (or delete) that precedes it has committed. Only executors that stay
up (launched with recovery, as ``wf worker`` is) run stored schedules;
declared ones tick wherever their module is imported and wf launched."""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .._core.starting import start_workflow
from .._registry import (
    WorkflowSpec,
    declared_schedules,
    find_or_import_workflow,
    find_workflow,
    schedules_changed,
)
from .._serialization import loads

if TYPE_CHECKING:
    from .._sysdb.schedules import ScheduleDef
    from .executor import Executor

log = logging.getLogger("wf")

# at most this many past ticks of one schedule are started after an outage
CATCH_UP = 100
# seconds between reads of the stored schedules
POLL = float(os.environ.get("WF_SCHEDULE_POLL", "2"))
# a stored schedule created (or resumed) this recently is ticked from that
# moment, not from when this loop first saw it: a tick due between the write
# and the next poll is not lost
_GRACE = POLL + 5.0
# the queue that ticks run on when started for an operator (trigger,
# backfill) and the schedule names none: the one every `wf worker` serves
DEFAULT_QUEUE = "default"


def start_scheduler(ex: Executor) -> None:
    t = threading.Thread(target=_loop, args=(ex,), name="wf-schedules", daemon=True)
    t.start()
    ex._threads.append(t)


def tick_id(name: str, tick: datetime) -> str:
    """The workflow ID of schedule ``name``'s tick at ``tick`` (a declared
    schedule is named after its workflow, ``module:function``)."""
    return f"sched-{name}-{tick.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"


def decode_inputs(inputs: str | None) -> tuple[list[Any], dict[str, Any]]:
    """A stored schedule's extra (args, kwargs)."""
    if not inputs:
        return [], {}
    doc = loads(inputs)
    return list(doc.get("args") or []), dict(doc.get("kwargs") or {})


def _unimported(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("a workflow enqueued by name runs in a worker that has its code")


def spec_by_name(name: str) -> WorkflowSpec:
    """The registered workflow, or (to enqueue by name, as wf.Client does)
    a stand-in a worker with the code resolves."""
    return find_workflow(name) or WorkflowSpec(name, _unimported, False, 50)


def start_tick(
    ex: Executor | None,
    sysdb: Any,
    *,
    name: str,
    spec: WorkflowSpec,
    tick: datetime,
    inputs: str | None,
    queue: str | None,
    workflow_id: str | None = None,
) -> str:
    """Start (``queue`` None: on ``ex``) or enqueue one run of a schedule:
    ``fn(scheduled_at, started_at, *args, **kwargs)``; returns its ID."""
    args, kwargs = decode_inputs(inputs)
    return start_workflow(
        ex,
        spec,
        (tick, datetime.now(UTC), *args),
        kwargs,
        sysdb=sysdb,
        workflow_id=workflow_id or tick_id(name, tick),
        queue=queue,
    )[0]


@dataclass
class _Entry:
    """One schedule as this loop runs it."""

    name: str
    cron: str
    target: str  # the workflow's recorded name
    source: str  # "code" | "db"
    inputs: str | None = None
    queue: str | None = None
    spec: WorkflowSpec | None = None  # a declared one's, or resolved when first due
    paused: bool = False
    next: datetime | None = None
    since: datetime | None = None  # tick after this when (re)started; None: now
    broken: str | None = None  # why its workflow cannot be started here (said once)

    def same(self, row: ScheduleDef) -> bool:
        return (self.cron, self.target, self.inputs, self.queue) == (
            row.cron,
            row.workflow_name,
            row.inputs,
            row.queue,
        )


def _stored_entry(row: ScheduleDef, now: datetime) -> _Entry:
    return _Entry(
        name=row.name,
        cron=row.cron,
        target=row.workflow_name,
        source="db",
        inputs=row.inputs,
        queue=row.queue,
        paused=row.paused,
        since=_since(row.updated_at, now),
    )


def _since(written_ms: int, now: datetime) -> datetime | None:
    """Tick from ``written_ms`` (a create or resume) when it was this recent."""
    written = datetime.fromtimestamp(written_ms / 1000, tz=UTC)
    return written if now - timedelta(seconds=_GRACE) < written <= now else None


def _loop(ex: Executor) -> None:
    from croniter import croniter

    entries: dict[str, _Entry] = {}
    recorded = 0  # how many of the declared schedules are recorded for tools
    stored = ex.recovery_enabled
    last_poll = float("-inf")
    while not ex.stopping.is_set():
        changed = schedules_changed.is_set()
        schedules_changed.clear()
        if recorded < len(declared_schedules):
            recorded = _record_declared(ex, recorded)
        for cron, fn in list(declared_schedules):
            e = entries.get(fn.wf_name)
            if e is None or e.cron != cron or e.source != "code":
                entries[fn.wf_name] = _Entry(fn.wf_name, cron, fn.wf_name, "code", spec=fn.wf_spec)
        # (nothing to read for a one-shot process without schedules)
        polling = stored or bool(entries)
        if polling and (changed or time.monotonic() - last_poll >= POLL):
            last_poll = time.monotonic()
            _poll(ex, entries, stored)
        now = datetime.now(UTC)
        soonest = POLL - (time.monotonic() - last_poll) if polling else 60.0
        for e in list(entries.values()):
            if e.paused:
                e.next = None
                continue
            if e.next is None:
                e.next = croniter(e.cron, e.since or now).get_next(datetime)
                e.since = None
            if e.next <= now:
                tick = e.next
                if _still_due(ex, entries, e):
                    _start(ex, e, tick)
                if e.name not in entries or e.paused or e.next is None:
                    continue
                # the tick after this one, not after now: a start that waited
                # out an outage is followed by the ticks that came due meanwhile
                e.next = _after(e.cron, tick, datetime.now(UTC))
            soonest = min(soonest, (e.next - now).total_seconds())
        if ex.stopping.wait(max(0.01, soonest)) or schedules_changed.is_set():
            continue
    time.sleep(0)


def _poll(ex: Executor, entries: dict[str, _Entry], stored: bool) -> None:
    """Bring ``entries`` in line with the schedules table: stored schedules
    appear, change and go; any schedule's pause flag is taken."""
    try:
        rows = {r.name: r for r in ex.sysdb.all_schedules()}
    except Exception as err:
        log.warning("wf schedules: cannot read the stored schedules yet: %s", err)
        return
    now = datetime.now(UTC)
    for name, e in list(entries.items()):
        row = rows.get(name)
        if e.source == "db" and (row is None or row.source != "db"):
            del entries[name]  # deleted
        elif row is not None:
            _take(e, row, now)
    if not stored:
        return
    for name, row in rows.items():
        if row.source == "db" and name not in entries:
            entries[name] = _stored_entry(row, now)


def _take(e: _Entry, row: ScheduleDef, now: datetime) -> None:
    """Adopt ``row``'s state (a declared entry: only its pause flag)."""
    if e.source == "db" and not e.same(row):
        fresh = _stored_entry(row, now)
        e.cron, e.target, e.inputs, e.queue = fresh.cron, fresh.target, fresh.inputs, fresh.queue
        e.spec, e.broken, e.next, e.since = None, None, None, fresh.since
    if e.paused and not row.paused:  # resumed: tick from the resume
        e.since = _since(row.updated_at, now)
    e.paused = row.paused


def _still_due(ex: Executor, entries: dict[str, _Entry], e: _Entry) -> bool:
    """Read the schedule's row right before its tick starts: paused or
    deleted since the last poll, the tick is not started."""
    try:
        row = ex.sysdb.get_schedule(e.name)
    except Exception as err:
        log.warning("wf schedule %s: cannot read it: %s", e.name, err)
        return e.source == "code"  # as before stored schedules: declared ones tick on
    if row is None:
        if e.source == "db":
            del entries[e.name]
            return False
        return True  # declared, not recorded yet
    if e.source == "db" and (row.source != "db" or not e.same(row)):
        _take(e, row, datetime.now(UTC))  # re-created differently: start over
        e.next = None
        return False
    if row.paused:
        e.paused = True
        return False
    return True


def _start(ex: Executor, e: _Entry, tick: datetime) -> None:
    try:
        spec = _spec(e)
        if spec is None:
            return
        start_tick(ex, ex.sysdb, name=e.name, spec=spec, tick=tick, inputs=e.inputs, queue=e.queue)
        ex.sysdb.schedule_ticked(e.name, int(tick.timestamp() * 1000))
    except Exception as err:
        log.warning("wf schedule %s: %s", e.name, err)


def _spec(e: _Entry) -> WorkflowSpec | None:
    """The workflow a tick starts: a stored schedule's is imported here when
    this worker starts it, or named only when its ticks go on a queue (the
    worker that dequeues it has the code). None: not here (said once)."""
    if e.spec is not None:
        return e.spec
    if e.broken is not None:
        return None
    if e.queue is not None:
        e.spec = spec_by_name(e.target)
        return e.spec
    try:
        e.spec = find_or_import_workflow(e.target)
        if e.spec is None:
            e.broken = f"no @wf.workflow {e.target!r} in its module"
    except Exception as err:
        e.broken = f"cannot import {e.target!r}: {err}"
    if e.broken is not None:
        log.warning(
            "wf schedule %s: not ticking it in this process (%s); workers that have the "
            "code tick it",
            e.name,
            e.broken,
        )
    return e.spec


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
