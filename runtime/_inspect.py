"""Reading the record: workflows, steps, logs and queues as typed records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from . import _root
from ._errors import (
    ConfigurationError,
    WorkflowNotFoundError,
)
from ._records import LOG_LEVELS, LogRecord, QueueInfo, Status, StepInfo, WorkflowInfo
from ._serialization import loads, loads_error_info
from ._sysdb import StepRow, WorkflowRow

if TYPE_CHECKING:
    pass


def _dt(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def workflow_info(row: WorkflowRow) -> WorkflowInfo:
    created = _dt(row.created_at)
    updated = _dt(row.updated_at)
    assert created is not None and updated is not None
    return WorkflowInfo(
        workflow_id=row.workflow_id,
        status=row.status,
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
    )


# -- inspecting ------------------------------------------------------------------------------


def get_workflow(workflow_id: str) -> WorkflowInfo:
    row = _root.client().get_workflow(workflow_id)
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


def list_workflows(
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = 20,
    offset: int = 0,
) -> list[WorkflowInfo]:
    """Recorded workflows, newest first."""
    statuses = _check_statuses(status)
    if limit is not None and limit < 0 or offset < 0:
        raise ConfigurationError("limit and offset must be >= 0")
    rows = _root.client().list_workflows(
        statuses=statuses,
        name=name,
        queue=queue,
        since=_ms(since),
        until=_ms(until),
        limit=limit,
        offset=offset,
    )
    return [workflow_info(r) for r in rows]


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
    )


def list_steps(workflow_id: str) -> list[StepInfo]:
    """Each recorded call of a workflow, by position (from 1)."""
    db = _root.client()
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
