"""The public functions: starting, inspecting and managing workflows.
The CLI calls exactly these."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from . import _executor
from ._context import current
from ._errors import (
    ConfigurationError,
    WfError,
    WorkflowConflictError,
    WorkflowNotFoundError,
    _OwnershipLost,
)
from ._executor import RecoveryResult, configure
from ._handles import WorkflowHandle
from ._loader import import_module
from ._notify import Waiter, ensure_listener, notify_local, wake_key
from ._records import LogRecord, QueueInfo, SchemaStatus, Status, StepInfo, WorkflowInfo
from ._registry import WorkflowSpec, find_or_import_workflow
from ._runner import (
    Existing,
    _NotRecorded,
    begin_workflow,
    check_determinism,
    replay,
    resolve_unrecorded,
    step_begin,
)
from ._serialization import dumps, loads, loads_error_info
from ._sysdb.database import StepRow, WorkflowRow, now_ms

if TYPE_CHECKING:
    from ._sysdb import SystemDatabase

__all__ = ["configure", "RecoveryResult"]


def _spec_of(fn: Any) -> WorkflowSpec:
    spec = getattr(fn, "wf_spec", None)
    if not isinstance(spec, WorkflowSpec):
        name = getattr(fn, "__qualname__", repr(fn))
        raise ConfigurationError(f"{name} is not a workflow (decorate it with @wf.workflow)")
    return spec


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


# -- starting --------------------------------------------------------------------------------


def start(
    fn: Callable[..., Any],
    *args: Any,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle:
    """Start a workflow in the background (or on ``queue``) and return its handle at once."""
    return _start(fn, args, kwargs, workflow_id=workflow_id, queue=queue, timeout=timeout)


def _start(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    priority: int = 0,
    dedup_id: str | None = None,
    delay: float | None = None,
) -> WorkflowHandle:
    spec = _spec_of(fn)
    if timeout is not None and timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds")
    # enqueueing from outside a workflow needs no executor here: a worker runs it
    ex = (
        _executor.get()
        if queue is None or current.get() is not None
        else _executor.current_or_none()
    )
    sysdb = ex.sysdb if ex is not None else _executor.client()
    plan = begin_workflow(
        sysdb,
        ex.executor_id if ex is not None else None,
        spec,
        args,
        kwargs,
        workflow_id=workflow_id,
        queue=queue,
        timeout=timeout,
        priority=priority,
        dedup_id=dedup_id,
        delay=delay,
    )
    if isinstance(plan, Existing):
        wid = plan.workflow_id
        parent, pos, recorded = plan.parent, plan.parent_position, plan.recorded
    else:
        wid = plan.ctx.workflow_id
        parent, pos, recorded = plan.parent, plan.parent_position, False
        if queue is None:
            assert ex is not None
            a, kw = plan.decoded_args()
            ex.submit(spec, wid, a, kw, deadline_ms=plan.ctx.deadline_ms)
    if parent is not None and pos is not None and not recorded:
        assert ex is not None
        # the parent records the started child's ID (no result): replay gets the handle back
        ok = ex.sysdb.record_step(
            parent.workflow_id,
            parent.executor_id,
            pos,
            spec.name,
            "child",
            None,
            None,
            now_ms(),
            child_workflow_id=wid,
        )
        if not ok:
            rec = resolve_unrecorded(ex, parent, pos)
            wid = rec.child_workflow_id or wid
    else:
        from ._queues import wake_dequeuers

        if queue is not None:
            wake_dequeuers()
    return WorkflowHandle(wid)


async def start_async(
    fn: Callable[..., Any],
    *args: Any,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle:
    return start(fn, *args, workflow_id=workflow_id, queue=queue, timeout=timeout, **kwargs)


def retrieve(workflow_id: str) -> WorkflowHandle:
    """A handle to any recorded workflow."""
    if _executor.client().get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return WorkflowHandle(workflow_id)


# -- inspecting ------------------------------------------------------------------------------


def get_workflow(workflow_id: str) -> WorkflowInfo:
    row = _executor.client().get_workflow(workflow_id)
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
    rows = _executor.client().list_workflows(
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
    db = _executor.client()
    if db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return [step_info(workflow_id, s) for s in db.get_steps(workflow_id)]


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "WARN": 30, "ERROR": 40, "CRITICAL": 50}


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
    db = _executor.client()
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
    return _executor.client().list_queue_infos()


# -- managing ----------------------------------------------------------------------------------


def cancel_in(db: SystemDatabase, workflow_id: str) -> None:
    """Cancel a workflow and, recursively, its children."""
    todo = [workflow_id]
    seen: set[str] = set()
    while todo:
        wid = todo.pop()
        if wid in seen:
            continue
        seen.add(wid)
        db.cancel_workflow(wid)
        notify_local(wake_key("w", wid))
        notify_local(wake_key("c", wid))
        todo.extend(db.children_of(wid))


def cancel(workflow_id: str) -> None:
    """Cancel a workflow (and its children). It stops at its next recorded call."""
    db = _executor.client()
    if db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    cancel_in(db, workflow_id)


def resume(workflow_id: str, *, detach: bool = False) -> WorkflowHandle:
    """Continue a cancelled, failed or RETRIES_EXCEEDED workflow from its last
    finished call: here, or (``detach``) on its queue for a worker."""
    db = _executor.client()
    row = db.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    if row.status == Status.SUCCESS:
        return WorkflowHandle(workflow_id)
    if detach:
        db.resume_workflow(workflow_id, None, row.queue or "default")
        return WorkflowHandle(workflow_id)
    spec = find_or_import_workflow(row.name)
    if spec is None:
        raise ConfigurationError(
            f"workflow function {row.name} is not defined in module {row.name.partition(':')[0]}"
        )
    ex = _executor.get()
    if row.status in (Status.PENDING, Status.ENQUEUED) and row.executor_id not in (
        None,
        ex.executor_id,
    ):
        executors = {r.executor_id: r for r in ex.sysdb.list_executors()}
        if not ex.is_dead(row.executor_id, executors):
            return WorkflowHandle(workflow_id)  # a live executor is running it
    # a cancelled run still going in this process stops at its next recorded
    # call; let it, or its last write could land on the resumed run
    ex.wait_stopped(workflow_id)
    ex.sysdb.resume_workflow(workflow_id, ex.executor_id, row.queue)
    fresh = ex.sysdb.get_workflow(workflow_id)
    assert fresh is not None
    ex.load_and_submit(fresh, spec)
    return WorkflowHandle(workflow_id)


def restart(
    id: str,
    /,
    from_step: int | None = None,
    workflow_id: str | None = None,
    *,
    detach: bool = False,
) -> WorkflowHandle:
    """Run a recorded workflow again under a new ID with the same inputs,
    reusing the recorded results of calls before position ``from_step``
    (None: run everything again)."""
    new_id = workflow_id
    workflow_id = id
    if from_step is not None and from_step < 1:
        raise ConfigurationError("from_step counts from 1")
    db = _executor.client()
    row = db.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    spec = None if detach else find_or_import_workflow(row.name)
    if not detach and spec is None:
        raise ConfigurationError(
            f"workflow function {row.name} is not defined in module {row.name.partition(':')[0]}"
        )
    ex = None if detach else _executor.get()
    db = ex.sysdb if ex else db
    new_id = new_id or str(uuid.uuid4())
    inserted = db.insert_restart(
        row,
        new_id,
        executor_id=ex.executor_id if ex else None,
        queue=(row.queue or "default") if detach else row.queue if row.queue else None,
        copy_before=(from_step - 1) if from_step else 0,
    )
    if not inserted:
        raise WorkflowConflictError(f"workflow ID {new_id!r} is already recorded")
    if ex is not None and spec is not None:
        fresh = db.get_workflow(new_id)
        assert fresh is not None
        ex.load_and_submit(fresh, spec)
    return WorkflowHandle(new_id)


def recover(
    modules: list[str] | None = None, executor_id: str | None = None, include_live: bool = False
) -> RecoveryResult:
    """Finish the workflows left by dead executors (or by ``executor_id``, or by
    every other executor with ``include_live``) in this process. Imports the
    given modules, or else the modules named by the recorded workflows."""
    imported = []
    for m in modules or []:
        import_module(m)
        imported.append(m)
    if _executor.current_or_none() is None:
        # launched just for this: its own launch-time recovery would race this
        # call for the same workflows and leave this call's report incomplete
        _executor.launch(recovery=False)
    ex = _executor.get()
    result = ex.recover(
        executor_id=executor_id, include_live=include_live, import_missing=not modules
    )
    result.imported_modules[:0] = imported
    return result


def migrate(database_url: str | None = None) -> int:
    """Run the system database's migrations alone; returns the schema version."""
    from . import _config
    from ._sysdb import SystemDatabase

    cfg = _config.resolve(database_url) if database_url else _executor._config_now()
    db = SystemDatabase(cfg.database_url, outage_timeout=0, pool_size=1)
    try:
        db.ensure_reachable()
        return db.migrate()
    finally:
        db.dispose()


def schema_status(database_url: str | None = None) -> SchemaStatus:
    from . import _config
    from ._sysdb import SystemDatabase
    from ._sysdb.schema import LATEST_VERSION

    cfg = _config.resolve(database_url) if database_url else _executor._config_now()
    db = SystemDatabase(cfg.database_url, outage_timeout=0, pool_size=1)
    try:
        db.ensure_reachable()
        return SchemaStatus(
            _config.display_url(cfg.database_url), db.schema_version(), LATEST_VERSION
        )
    finally:
        db.dispose()


# -- durable sleep, messages, events -----------------------------------------------------------


def _in_workflow() -> Any:
    ctx = current.get()
    return ctx if ctx is not None and ctx.in_step is None else None


def sleep(seconds: float) -> None:
    """Durable sleep: after a restart only the remainder is slept."""
    ctx = _in_workflow()
    if ctx is None:
        time.sleep(seconds)
        return
    ex = _executor.get()
    pos, rec = step_begin(ex, ctx, "sleep", "sleep")
    if rec is not None:
        check_determinism(ctx, pos, rec, "sleep", "sleep")
        wake = float(loads(rec.output))
    else:
        wake = time.time() + max(0.0, seconds)
        if not ex.sysdb.record_step(
            ctx.workflow_id, ctx.executor_id, pos, "sleep", "sleep", dumps(wake), None, now_ms()
        ):
            wake = float(replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "sleep", "sleep"))
    waiter = Waiter(wake_key("c", ctx.workflow_id))
    while True:
        waiter.arm()
        remaining = wake - time.time()
        if remaining <= 0:
            return
        if ex.stopping.is_set():
            raise _OwnershipLost()
        waiter.wait(min(remaining, 1.0))
        out = ex.sysdb.get_outcome(ctx.workflow_id) if remaining > 1.0 else None
        if out is not None and out[0] == Status.CANCELLED:
            from ._errors import WorkflowCancelledError

            raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")


def _topic(topic: str | None) -> str:
    return "" if topic is None else str(topic)


def send(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """Send a message to a workflow (exactly once from inside a workflow; once
    per ``idempotency_key`` from anywhere)."""
    payload = dumps(message)
    ctx = _in_workflow()
    if ctx is None:
        db = _executor.client()
        if db.get_outcome(destination_id) is None:
            raise WorkflowNotFoundError(f"no workflow with ID {destination_id!r}")
        with db.transaction() as conn:
            db.insert_message(destination_id, _topic(topic), payload, idempotency_key, conn)
    else:
        ex = _executor.get()
        pos, rec = step_begin(ex, ctx, "send", "send")
        if rec is not None:
            replay(ctx, pos, rec, "send", "send")
            return
        started = now_ms()
        try:
            with ex.sysdb.transaction() as conn:
                ex.sysdb.insert_message(
                    destination_id, _topic(topic), payload, idempotency_key, conn
                )
                if not ex.sysdb.record_step(
                    ctx.workflow_id,
                    ctx.executor_id,
                    pos,
                    "send",
                    "send",
                    "null",
                    None,
                    started,
                    conn=conn,
                ):
                    raise _NotRecorded()
        except _NotRecorded:
            replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "send", "send")
            return
    notify_local(wake_key("m", destination_id, _topic(topic)))


def recv(topic: str | None = None, timeout: float = 60) -> Any:
    """The oldest unread message on ``topic`` for this workflow, or None after
    ``timeout`` seconds. Each message is delivered once."""
    ctx = _in_workflow()
    if ctx is None:
        raise WfError("wf.recv() is only available inside a workflow")
    ex = _executor.get()
    pos, rec = step_begin(ex, ctx, "recv", "recv")
    if rec is not None:
        return replay(ctx, pos, rec, "recv", "recv")
    started = now_ms()
    t = _topic(topic)
    ensure_listener(ex.sysdb.url)
    deadline = time.monotonic() + max(0.0, timeout)
    waiter = Waiter(wake_key("m", ctx.workflow_id, t))
    delay = 0.005
    while True:
        waiter.arm()
        try:
            with ex.sysdb.transaction() as conn:
                msg = ex.sysdb.take_message(ctx.workflow_id, t, conn)
                if msg is not None or time.monotonic() >= deadline:
                    out = msg if msg is not None else "null"
                    if not ex.sysdb.record_step(
                        ctx.workflow_id,
                        ctx.executor_id,
                        pos,
                        "recv",
                        "recv",
                        out,
                        None,
                        started,
                        conn=conn,
                    ):
                        raise _NotRecorded()
                    return loads(out)
        except _NotRecorded:
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "recv", "recv")
        if ex.stopping.is_set():
            raise _OwnershipLost()
        waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)


def set_event(key: str, value: Any) -> None:
    """Publish a value under ``key`` for this workflow (last value wins)."""
    ctx = _in_workflow()
    if ctx is None:
        raise WfError("wf.set_event() is only available inside a workflow")
    payload = dumps(value)
    ex = _executor.get()
    pos, rec = step_begin(ex, ctx, "set_event", "event")
    if rec is not None:
        replay(ctx, pos, rec, "set_event", "event")
        return
    started = now_ms()
    try:
        with ex.sysdb.transaction() as conn:
            ex.sysdb.set_event(ctx.workflow_id, str(key), payload, conn=conn)
            if not ex.sysdb.record_step(
                ctx.workflow_id,
                ctx.executor_id,
                pos,
                "set_event",
                "event",
                "null",
                None,
                started,
                conn=conn,
            ):
                raise _NotRecorded()
    except _NotRecorded:
        replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "set_event", "event")
        return
    notify_local(wake_key("e", ctx.workflow_id, str(key)))


def get_event(workflow_id: str, key: str, timeout: float = 60) -> Any:
    """The value a workflow published under ``key``, waiting up to ``timeout``
    seconds for it; None if it never came."""
    ctx = _in_workflow()
    ex = _executor.get() if ctx is not None else None
    db = ex.sysdb if ex is not None else _executor.client()
    pos = -1
    if ctx is not None and ex is not None:
        pos, rec = step_begin(ex, ctx, "get_event", "event")
        if rec is not None:
            return replay(ctx, pos, rec, "get_event", "event")
    started = now_ms()
    ensure_listener(db.url)
    deadline = time.monotonic() + max(0.0, timeout)
    waiter = Waiter(wake_key("e", workflow_id, str(key)))
    delay = 0.005
    while True:
        waiter.arm()
        value = db.get_event(workflow_id, str(key))
        if value is not None or time.monotonic() >= deadline:
            break
        waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)
    out = value if value is not None else "null"
    if ctx is not None and ex is not None:
        if not ex.sysdb.record_step(
            ctx.workflow_id, ctx.executor_id, pos, "get_event", "event", out, None, started
        ):
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "get_event", "event")
    return loads(out)
