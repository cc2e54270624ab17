"""Reading the record: workflows, steps, logs and queues as typed records."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from . import _root
from ._errors import (
    ConfigurationError,
    WorkflowNotFoundError,
)
from ._liveness import HOST, STALE_AFTER, pid_alive
from ._records import (
    LOG_LEVELS,
    EventInfo,
    ExecutorInfo,
    LogRecord,
    QueueInfo,
    ScheduleInfo,
    Status,
    StepInfo,
    WorkflowInfo,
)
from ._serialization import loads, loads_error_info
from ._sysdb import StepRow, SystemDatabase, WorkflowRow, now_ms


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def workflow_info(row: WorkflowRow, child_count: int | None = None) -> WorkflowInfo:
    created = _dt(row.created_at)
    updated = _dt(row.updated_at)
    assert created is not None and updated is not None
    status = row.status
    if status == Status.ENQUEUED and row.not_before is not None and row.not_before > now_ms():
        status = Status.DELAYED
    return WorkflowInfo(
        workflow_id=row.workflow_id,
        status=status,
        name=row.name,
        inputs=loads(row.inputs),
        output=loads(row.output),
        error=loads_error_info(row.error),
        created_at=created,
        updated_at=updated,
        executor_id=row.executor_id,
        queue=row.queue,
        recovery_attempts=row.recovery_attempts,
        parent_workflow_id=row.parent_workflow_id,
        deadline=_dt(row.deadline),
        started_at=_dt(row.started_at),
        cancel_reason=row.cancel_reason,
        forked_from=row.forked_from,
        forked_from_step=None if row.forked_from_step is None else row.forked_from_step + 1,
        app_version=row.app_version,
        child_count=child_count,
        priority=row.priority,
        dedup_id=row.dedup_id,
        partition_key=row.partition_key,
        delayed_until=_dt(row.not_before) if row.status == Status.ENQUEUED else None,
    )


# -- inspecting ------------------------------------------------------------------------------


def get_workflow(workflow_id: str) -> WorkflowInfo:
    return get_workflow_in(None, workflow_id)


# The *_in functions are the public reads against a given system database
# (None: the process's), so a wf.Client on its own database reuses them; the
# database is taken only after the arguments are checked (bad input touches nothing).


def get_workflow_in(db: SystemDatabase | None, workflow_id: str) -> WorkflowInfo:
    row = (db or _root.client()).get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return workflow_info(row)


def _check_statuses(status: str | list[str] | tuple[str, ...] | None) -> list[str] | None:
    if status is None:
        return None
    statuses = [status] if isinstance(status, str) else list(status)
    out = []
    for s in statuses:
        up = s.upper()
        if up not in Status.ALL:
            raise ConfigurationError(f"unknown status {s!r}: use one of {', '.join(Status.ALL)}")
        out.append(up)
    return out or None


def _ms(t: datetime | None) -> int | None:
    if t is None:
        return None
    if t.tzinfo is None:
        t = t.astimezone()
    return int(t.timestamp() * 1000)


def _filters(
    status: str | list[str] | tuple[str, ...] | None,
    name: str | None,
    queue: str | None,
    since: datetime | None,
    until: datetime | None,
    parent: str | None,
    top_level: bool,
    app_version: str | None = None,
    partition_key: str | None = None,
) -> dict[str, Any]:
    if queue is not None and not queue.strip():
        raise ConfigurationError("a queue name must not be empty")
    return dict(
        app_version=app_version,
        partition_key=partition_key,
        statuses=_check_statuses(status),
        name=name or None,
        queue=queue,
        since=_ms(since),
        until=_ms(until),
        parent_workflow_id=parent,
        top_level=top_level,
    )


def list_workflows(
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 20,
    offset: int = 0,
    *,
    parent: str | None = None,
    top_level: bool = False,
    child_counts: bool = False,
    app_version: str | None = None,
    partition_key: str | None = None,
) -> list[WorkflowInfo]:
    """Recorded workflows, newest first. ``parent``: only that workflow's
    children; ``top_level``: only workflows that are nobody's child;
    ``child_counts``: fill each one's ``child_count``; ``app_version``: only
    workflows recorded as of that application version; ``partition_key``:
    only that partition's (of a partitioned queue)."""
    return list_workflows_in(
        None,
        status,
        name,
        queue,
        since,
        until,
        limit,
        offset,
        parent=parent,
        top_level=top_level,
        child_counts=child_counts,
        app_version=app_version,
        partition_key=partition_key,
    )


def list_workflows_in(
    db: SystemDatabase | None,
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 20,
    offset: int = 0,
    *,
    parent: str | None = None,
    top_level: bool = False,
    child_counts: bool = False,
    app_version: str | None = None,
    partition_key: str | None = None,
) -> list[WorkflowInfo]:
    filters = _filters(
        status, name, queue, since, until, parent, top_level, app_version, partition_key
    )
    if limit is not None and limit < 0 or offset < 0:
        raise ConfigurationError("limit and offset must be >= 0")
    db = db or _root.client()
    rows = db.list_workflows(limit=limit, offset=offset, **filters)
    if not child_counts:
        return [workflow_info(r) for r in rows]
    counts = db.child_counts([r.workflow_id for r in rows])
    return [workflow_info(r, counts.get(r.workflow_id, 0)) for r in rows]


def count_workflows(
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    parent: str | None = None,
    top_level: bool = False,
    app_version: str | None = None,
    partition_key: str | None = None,
) -> int:
    """How many workflows ``list_workflows`` would list with these filters and no limit."""
    filters = _filters(
        status, name, queue, since, until, parent, top_level, app_version, partition_key
    )
    return _root.client().count_workflows(**filters)


def step_info(workflow_id: str, s: StepRow) -> StepInfo:
    return StepInfo(
        workflow_id=workflow_id,
        position=s.position + 1,
        name=s.name,
        kind=s.kind,
        output=loads(s.output),
        error=loads_error_info(s.error),
        started_at=_dt(s.started_at),
        ended_at=_dt(s.ended_at),
        child_workflow_id=s.child_workflow_id,
        attempts=s.attempts,
        detail=s.detail,
    )


def list_steps(workflow_id: str) -> list[StepInfo]:
    """Each recorded call of a workflow, by position (from 1)."""
    return list_steps_in(None, workflow_id)


def list_steps_in(db: SystemDatabase | None, workflow_id: str) -> list[StepInfo]:
    db = db or _root.client()
    if db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return [step_info(workflow_id, s) for s in db.get_steps(workflow_id)]


_LEVELS = {**LOG_LEVELS, "WARN": LOG_LEVELS["WARNING"]}  # logging's alias too


def list_logs(
    workflow_id: str | None = None,
    level: str | None = None,
    since: datetime | None = None,
    after: int | None = None,
    limit: int | None = None,
) -> list[LogRecord]:
    """Durable log lines, oldest first. ``after`` is a LogRecord.seq cursor."""
    min_level = None
    if level is not None:
        min_level = _LEVELS.get(level.upper())
        if min_level is None:
            raise ConfigurationError(
                f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
            )
    db = _root.client()
    if workflow_id is not None and db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    rows = db.get_logs(workflow_id, min_level, _ms(since), after, limit)
    return [
        LogRecord(
            workflow_id=w, time=_dt(t) or datetime.now(UTC), level=lv, step=st, message=m, seq=i
        )
        for i, w, t, lv, st, m in rows
    ]


def list_queues() -> list[QueueInfo]:
    return _root.client().list_queue_infos()


def list_events(workflow_id: str) -> list[EventInfo]:
    """The events a workflow has set (the last value of each key), by key."""
    db = _root.client()
    if db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return [
        EventInfo(e.key, loads(e.value), _dt(e.updated_at) or datetime.now(UTC))
        for e in db.list_events(workflow_id)
    ]


def list_executors() -> list[ExecutorInfo]:
    """The executors that have registered, with whether each is alive now."""
    return list_executors_in(None)


def list_executors_in(db: SystemDatabase | None) -> list[ExecutorInfo]:
    now = time.time() * 1000
    out = []
    for r in (db or _root.client()).list_executors():
        alive = now - r.heartbeat_at <= STALE_AFTER * 1000 and (
            r.host != HOST or pid_alive(r.pid, r.started_at)
        )
        out.append(
            ExecutorInfo(
                executor_id=r.executor_id,
                host=r.host,
                pid=r.pid,
                started_at=_dt(r.started_at) or datetime.now(UTC),
                heartbeat_at=_dt(r.heartbeat_at) or datetime.now(UTC),
                alive=alive,
                queues=None if r.queues is None else list(json.loads(r.queues)),
                workflows=None if r.workflows is None else list(json.loads(r.workflows)),
            )
        )
    return sorted(out, key=lambda e: e.executor_id)


def list_schedules() -> list[ScheduleInfo]:
    """Every schedule: those workers declared (``@wf.scheduled``, source
    "code") and those stored by ``wf.create_schedule`` (source "db"), with
    their last started tick and the next one due (None while paused)."""
    now = datetime.now(UTC)
    return [schedule_info(r, now) for r in _root.client().all_schedules()]


def schedule_info(r: Any, now: datetime) -> ScheduleInfo:
    """A schedules row (``wf._sysdb.schedules.ScheduleDef``) as a record."""
    from croniter import croniter

    nxt: datetime | None = None
    if not r.paused:
        try:
            nxt = croniter(r.cron, now).get_next(datetime)
        except (ValueError, KeyError):
            nxt = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    if r.inputs:
        doc = loads(r.inputs)
        args, kwargs = tuple(doc.get("args") or ()), dict(doc.get("kwargs") or {})
    return ScheduleInfo(
        name=r.name,
        workflow_name=r.workflow_name,
        cron=r.cron,
        last_tick=_dt(r.last_tick),
        next_tick=nxt,
        updated_at=_dt(r.updated_at) or now,
        source=r.source,
        paused=bool(r.paused),
        args=args,
        kwargs=kwargs,
        queue=r.queue,
        created_at=_dt(r.created_at),
    )
