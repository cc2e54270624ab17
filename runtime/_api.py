"""Starting and managing workflows: the public functions the CLI calls
(reading the record is in _inspect.py; sleep, messages and events in _comm.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _executor
from ._context import current, take_assigned_id
from ._errors import (
    ConfigurationError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from ._executor import RecoveryResult
from ._handles import WorkflowHandle
from ._loader import import_module
from ._notify import notify_local, wake_key
from ._records import SchemaStatus, Status
from ._registry import WorkflowSpec, find_or_import_workflow
from ._runner import (
    Existing,
    begin_workflow,
    check_workflow_id,
    resolve_unrecorded,
)
from ._sysdb import now_ms

if TYPE_CHECKING:
    from ._sysdb import SystemDatabase


def _spec_of(fn: Any) -> WorkflowSpec:
    spec = getattr(fn, "wf_spec", None)
    if not isinstance(spec, WorkflowSpec):
        name = getattr(fn, "__qualname__", repr(fn))
        raise ConfigurationError(f"{name} is not a workflow (decorate it with @wf.workflow)")
    return spec


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
        _executor.for_call()
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
    """``start`` for async code: its database calls (and a first launch) run
    in a worker thread, never on the caller's event loop."""
    wid = workflow_id or take_assigned_id()  # the thread's context is a copy
    return await asyncio.to_thread(
        start, fn, *args, workflow_id=wid, queue=queue, timeout=timeout, **kwargs
    )


def retrieve(workflow_id: str) -> WorkflowHandle:
    """A handle to any recorded workflow."""
    if _executor.client().get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return WorkflowHandle(workflow_id)


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
    check_workflow_id(new_id)
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
