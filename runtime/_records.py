"""Typed records returned by the public API (and printed by the CLI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


class Status:
    ENQUEUED = "ENQUEUED"
    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    CANCELLED = "CANCELLED"
    RETRIES_EXCEEDED = "RETRIES_EXCEEDED"

    # shown (never stored) for an ENQUEUED workflow whose delay has not passed
    # yet; filtering on ENQUEUED still finds it
    DELAYED = "DELAYED"

    ALL = (ENQUEUED, DELAYED, PENDING, SUCCESS, ERROR, CANCELLED, RETRIES_EXCEEDED)
    ENDED = (SUCCESS, ERROR, CANCELLED, RETRIES_EXCEEDED)


# the levels a workflow's log records carry, by their `logging` numbers
LOG_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    # what it was raised from, outermost first (``__cause__``, else the
    # unsuppressed ``__context__``): each a type and message, no causes of its own
    causes: tuple[ErrorInfo, ...] = ()


@dataclass(frozen=True)
class WorkflowInfo:
    workflow_id: str
    status: str
    name: str
    inputs: Any  # {"args": [...], "kwargs": {...}}, deserialized
    output: Any
    error: ErrorInfo | None
    created_at: datetime
    updated_at: datetime
    executor_id: str | None
    queue: str | None
    recovery_attempts: int
    parent_workflow_id: str | None = None
    deadline: datetime | None = None
    started_at: datetime | None = None  # when its current run began; None while queued
    cancel_reason: str | None = None  # why it was cancelled (wf.cancel's reason, a timeout, ...)
    forked_from: str | None = None  # the workflow a restart copied
    forked_from_step: int | None = None  # the calls before this position (from 1) were copied
    app_version: str | None = None
    child_count: int | None = None  # filled by list_workflows(child_counts=True)
    priority: int = 0
    dedup_id: str | None = None
    partition_key: str | None = None
    delayed_until: datetime | None = None  # a delay=/debounce workflow's earliest start

    @property
    def function(self) -> str:
        """The function part of ``module:function``."""
        return self.name.rpartition(":")[2]

    @property
    def module(self) -> str:
        return self.name.rpartition(":")[0]


@dataclass(frozen=True)
class StepInfo:
    workflow_id: str
    position: int  # from 1, as `wf steps` shows
    name: str
    kind: str  # step, transaction, child, sleep, send, recv, event, get_event, patch, stream
    output: Any
    error: ErrorInfo | None
    started_at: datetime | None
    ended_at: datetime | None
    child_workflow_id: str | None = None
    attempts: int = 1  # a retried step's attempts
    detail: str | None = None  # recv: its topic; an event: its key; send: where to


@dataclass(frozen=True)
class LogRecord:
    workflow_id: str
    time: datetime
    level: str
    step: str | None
    message: str
    seq: int = 0  # the record's row id: a cursor for `wf logs --follow`


@dataclass(frozen=True)
class QueueInfo:
    name: str
    enqueued: int
    running: int
    concurrency: int | None
    worker_concurrency: int | None
    rate_limit: tuple[int, float] | None
    priority: bool
    partition_concurrency: int | None = None  # per partition (partition_key), across processes
    partition_rate_limit: tuple[int, float] | None = None
    # the busiest partitions: (partition key, enqueued, running), most running first
    partitions: tuple[tuple[str, int, int], ...] = ()
    # False: no process declaring the queue has published its limits yet (the
    # limits above are unknown, not absent)
    published: bool = True


@dataclass(frozen=True)
class SchemaStatus:
    url: str  # password masked
    current_version: int
    latest_version: int


@dataclass(frozen=True)
class EventInfo:
    key: str
    value: Any
    updated_at: datetime


@dataclass(frozen=True)
class ExecutorInfo:
    executor_id: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool  # its heartbeat is fresh (and, on this machine, its process runs)
    queues: list[str] | None  # the queues it dequeues from; None: every queue
    # the workflows it has registered (recorded names); None: not said (an older wf)
    workflows: list[str] | None = None


@dataclass(frozen=True)
class ScheduleInfo:
    name: str
    workflow_name: str
    cron: str
    last_tick: datetime | None
    next_tick: datetime | None  # None while paused
    updated_at: datetime
    # "code": a worker's @wf.scheduled (named after its workflow);
    # "db": stored by wf.create_schedule
    source: str = "code"
    paused: bool = False
    # what a stored schedule passes each tick after (scheduled_at, started_at)
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] | None = None
    queue: str | None = None  # its ticks go on this queue (None: a worker starts them)
    created_at: datetime | None = None  # stored ones: when created


@dataclass(frozen=True)
class ReplayInfo:
    """What ``wf.replay`` found: today's code agrees with the record.
    ``complete``: the code reached the recorded end (False: the run is still
    in flight and the code agrees with it as far as it got)."""

    workflow_id: str
    name: str
    status: str
    calls: int
    complete: bool
