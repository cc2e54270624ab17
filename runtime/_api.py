"""Starting and managing workflows: the public functions the CLI calls
(reading the record is in _inspect.py; sleep, messages and events in _comm.py)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from . import _root
from ._config import check_app_version
from ._context import take_assigned_id, workflow_here
from ._core import (
    BY_API,
    ChildSlot,
    Debounce,
    cancel_tree,
    check_determinism,
    check_workflow_id,
    record_started,
    reserve_child,
    start_workflow,
)
from ._errors import (
    ConfigurationError,
    WfError,
    WorkflowConflictError,
    WorkflowNotFoundError,
)
from ._handles import WorkflowHandle
from ._loader import import_module
from ._records import SchemaStatus, Status
from ._registry import WorkflowSpec, find_or_import_workflow
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
    slot: ChildSlot | None | Literal[True] = True,
    partition_key: str | None = None,
    debounce: Debounce | None = None,
    on_duplicate: str = "raise",
) -> WorkflowHandle:
    """``slot``: the position in the calling workflow, reserved already (an
    async caller), or True to reserve it here."""
    spec = _spec_of(fn)
    if timeout is not None and timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds")
    if queue is not None and not queue.strip():
        raise ConfigurationError("a queue name must not be empty")
    in_workflow = slot is not True and slot is not None or workflow_here() is not None
    # enqueueing from outside a workflow needs no executor here: a worker runs it
    ex = _root.for_call() if queue is None or in_workflow else _root.current_or_none()
    sysdb = ex.sysdb if ex is not None else _root.client()
    if slot is True:
        slot = reserve_child(ex, spec.name)
    assert slot is not True
    wid, run = start_workflow(
        ex,
        spec,
        args,
        kwargs,
        sysdb=sysdb,
        slot=slot,
        workflow_id=workflow_id,
        queue=queue,
        timeout=timeout,
        priority=priority,
        dedup_id=dedup_id,
        delay=delay,
        partition_key=partition_key,
        debounce=debounce,
        on_duplicate=on_duplicate,
    )
    return WorkflowHandle(wid, run)


async def start_async(
    fn: Callable[..., Any],
    *args: Any,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    **kwargs: Any,
) -> WorkflowHandle:
    """``start`` for async code: its database calls (and a first launch) run
    in a worker thread, never on the caller's event loop. Inside a workflow
    the child's position is taken here, on the loop, in call order."""
    wid = workflow_id or take_assigned_id()  # the thread's context is a copy
    spec = _spec_of(fn)
    slot = reserve_child(_root.for_call(), spec.name) if workflow_here() else None
    return await asyncio.to_thread(
        _start,
        fn,
        args,
        kwargs,
        workflow_id=wid,
        queue=queue,
        timeout=timeout,
        slot=slot,
    )


def retrieve(workflow_id: str) -> WorkflowHandle:
    """A handle to any recorded workflow."""
    if _root.client().get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    return WorkflowHandle(workflow_id)


# -- managing ----------------------------------------------------------------------------------


def cancel(workflow_id: str, *, reason: str | None = None) -> None:
    """Cancel a workflow (and its children). It stops before its next call.
    ``reason`` is recorded (``cancel_reason``; default "wf.cancel")."""
    cancel_in(_root.client(), workflow_id, reason=reason)


def cancel_in(db: SystemDatabase, workflow_id: str, *, reason: str | None = None) -> None:
    """``cancel`` on a given system database (a wf.Client's)."""
    if db.get_outcome(workflow_id) is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    cancel_tree(db, workflow_id, reason or BY_API)


def resume(
    workflow_id: str, *, detach: bool = False, app_version: str | None = None
) -> WorkflowHandle:
    """Continue a cancelled, failed or RETRIES_EXCEEDED workflow from its last
    finished call: here, or (``detach``) on its queue (``default``) for a
    worker. A queued workflow always goes back on its queue, so the queue's
    limits hold for it; without ``detach`` this process then dequeues it
    itself when a slot is free (unless a worker takes it first). A workflow
    running under a live executor is left as it is, one waiting on its queue
    stays there.

    ``app_version`` moves the workflow to that application version's code on
    purpose (it is recorded as of it from now on; also one waiting on its
    queue, which that version's dequeuers then take); a workflow of another
    version than this process's goes to a worker of its version (as ``detach``).

    Each change is one statement conditional on the state it was decided on;
    when the row changed meanwhile (claimed, dequeued, ended) it is read again
    and the decision made again."""
    return resume_in(None, workflow_id, detach=detach, app_version=app_version)


def resume_in(
    given: SystemDatabase | None,
    workflow_id: str,
    *,
    detach: bool = False,
    app_version: str | None = None,
) -> WorkflowHandle:
    """``resume`` on a given system database (a wf.Client's: ``detach`` only,
    nothing runs in the client's process); None: the process's."""
    from ._core import wake_dequeuers
    from ._liveness import HOST, STALE_AFTER, pid_alive
    from ._worker.dequeue import take_here

    version = check_app_version(app_version)
    assert given is None or detach, "a resume on another database is left to its workers"
    db = given or _root.client()
    row = db.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    ex = None
    spec = None
    if not detach and _other_version(version or row.app_version):
        detach = True  # this process runs another release's code: a worker of its own runs it
    if not detach and row.status != Status.SUCCESS:
        spec = find_or_import_workflow(row.name)
        if spec is None:
            raise ConfigurationError(
                f"workflow function {row.name} is not defined in module {row.name.partition(':')[0]}"
            )
        ex = _root.get()
        db = ex.sysdb

    def alive(executor_id: str) -> bool:
        executors = {r.executor_id: r for r in db.list_executors()}
        if ex is not None:
            return not ex.is_dead(executor_id, executors)
        e = executors.get(executor_id)  # no executor here: judge as `wf recover` does
        if e is None or (e.host == HOST and not pid_alive(e.pid, e.started_at)):
            return False
        return now_ms() - e.heartbeat_at <= STALE_AFTER * 1000

    changes = 0
    while changes < 100:
        if row.status == Status.SUCCESS:
            return WorkflowHandle(workflow_id)
        if row.status == Status.ENQUEUED:  # on its queue already
            if version is not None and version != row.app_version:
                # moved to that version's code: its dequeuers take it now
                if not db.move_enqueued_version(row, version):
                    changes += 1  # dequeued (or changed) meanwhile: decide again
                    row = db.get_workflow(workflow_id)
                    if row is None:
                        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
                    continue
                wake_dequeuers()
            if not detach:
                take_here(workflow_id, row.queue or "default")
            return WorkflowHandle(workflow_id)
        if row.status == Status.PENDING and row.executor_id is not None:
            if ex is not None and row.executor_id == ex.executor_id:
                if ex.runs_here(workflow_id):
                    return WorkflowHandle(workflow_id)
            elif alive(row.executor_id):
                return WorkflowHandle(workflow_id)  # a live executor is running it
        if detach or row.queue is not None:
            if db.resume_workflow(row, None, row.queue or "default", version):
                if detach:
                    wake_dequeuers()
                else:
                    take_here(workflow_id, row.queue or "default")
                return WorkflowHandle(workflow_id)
        else:
            assert ex is not None and spec is not None
            # a cancelled run still going stops before its next call (its
            # running step's result is kept); wait for it, here or in another
            # live process, or the step would run twice at once
            ex.wait_stopped(workflow_id)
            if (
                row.status == Status.CANCELLED
                and row.slot_held
                and row.executor_id not in (None, ex.executor_id)
                and alive(row.executor_id)
            ):
                time.sleep(0.1)
                row = db.get_workflow(workflow_id) or row
                continue
            if ex.sysdb.resume_workflow(row, ex.executor_id, None, version or ex.app_version):
                fresh = ex.sysdb.get_workflow(workflow_id)
                assert fresh is not None
                ex.load_and_submit(fresh, spec)
                return WorkflowHandle(workflow_id)
        # changed since it was read: decide again on what it is now
        changes += 1
        row = db.get_workflow(workflow_id)
        if row is None:
            raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    raise WfError(f"workflow {workflow_id} kept changing while it was being resumed; try again")


def restart(
    id: str,
    /,
    from_step: int | None = None,
    workflow_id: str | None = None,
    *,
    detach: bool = False,
    app_version: str | None = None,
) -> WorkflowHandle:
    """Run a recorded workflow again under a new ID with the same inputs,
    reusing the recorded results of calls before position ``from_step``
    (None: run everything again). ``app_version``: the new workflow is
    recorded as of that application version (default: this process's, else
    the original's); another version than this process's runs on a worker
    of its own (as ``detach``)."""
    version = check_app_version(app_version)
    new_id = workflow_id
    workflow_id = id
    if from_step is not None and from_step < 1:
        raise ConfigurationError("from_step counts from 1")
    db = _root.client()
    row = db.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    if from_step is not None:
        n = len(db.get_steps(workflow_id))
        if from_step > n + 1:
            raise ConfigurationError(
                f"from_step {from_step}: workflow {workflow_id} has {n} recorded step(s); "
                f"use 1..{n + 1}"
            )
    if not detach and workflow_here() is None and _other_version(version):
        detach = True
    spec = None if detach else find_or_import_workflow(row.name)
    if not detach and spec is None:
        raise ConfigurationError(
            f"workflow function {row.name} is not defined in module {row.name.partition(':')[0]}"
        )
    # inside a workflow a restart is a recorded call (like starting a child):
    # a replay returns the recorded handle instead of forking another copy
    caller = workflow_here()
    slot = None
    if caller is not None:
        slot = reserve_child(_root.for_call(), "restart")
        assert slot is not None
        if slot.recorded is not None:
            check_determinism(caller, slot.position, slot.recorded, "restart", "child")
            return WorkflowHandle(slot.recorded.child_workflow_id or slot.derived_id)
    ex = None if detach else _root.for_call()
    db = ex.sysdb if ex else db
    derived = new_id is None and slot is not None
    new_id = new_id or (slot.derived_id if slot is not None else str(uuid.uuid4()))
    check_workflow_id(new_id)
    inserted = db.insert_restart(
        row,
        new_id,
        executor_id=ex.executor_id if ex else None,
        queue=(row.queue or "default") if detach else row.queue if row.queue else None,
        copy_before=(from_step - 1) if from_step else 0,
        app_version=version,
    )
    if not inserted:
        mine = db.get_workflow(new_id) if derived else None
        # our own restart, inserted before a crash cut this call off: adopt it
        if mine is None or mine.name != row.name or mine.inputs != row.inputs:
            raise WorkflowConflictError(f"workflow ID {new_id!r} is already recorded")
    elif ex is not None and spec is not None:
        fresh = db.get_workflow(new_id)
        assert fresh is not None
        ex.load_and_submit(fresh, spec)
    if slot is not None:
        assert ex is not None or detach
        new_id = record_started(
            ex or _root.for_call(), slot.parent, slot.position, "restart", new_id
        )
    return WorkflowHandle(new_id)


def _other_version(version: str | None) -> bool:
    """Is ``version`` another application version than this process runs?"""
    if version is None:
        return False
    ex = _root.current_or_none()
    mine = ex.app_version if ex is not None else _root._config_now().app_version
    return mine is not None and mine != version


@dataclass
class RecoveryResult:
    """What a recovery pass did: handles of the workflows it runs, the modules
    it imported to find their code, and what it left (ID, reason)."""

    handles: list[WorkflowHandle] = field(default_factory=list)
    imported_modules: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


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
    if _root.current_or_none() is None:
        # launched just for this: its own launch-time recovery would race this
        # call for the same workflows and leave this call's report incomplete
        _root.launch(recovery=False)
    ex = _root.get()
    done = ex.recover(
        executor_id=executor_id, include_live=include_live, import_missing=not modules
    )
    return RecoveryResult(
        [WorkflowHandle(wid) for wid in done.workflow_ids],
        imported + done.imported_modules,
        done.skipped,
    )


def migrate(database_url: str | None = None) -> int:
    """Run the system database's migrations alone; returns the schema version."""
    from . import _config
    from ._sysdb import SystemDatabase

    cfg = _config.resolve(database_url) if database_url else _root._config_now()
    db = SystemDatabase(cfg.database_url, outage_timeout=0, pool_size=1, **cfg.connection_options())
    try:
        db.ensure_reachable()
        return db.migrate()
    finally:
        db.dispose()


def schema_status(database_url: str | None = None) -> SchemaStatus:
    from . import _config
    from ._sysdb import SystemDatabase
    from ._sysdb.schema import LATEST_VERSION

    cfg = _config.resolve(database_url) if database_url else _root._config_now()
    db = SystemDatabase(cfg.database_url, outage_timeout=0, pool_size=1, **cfg.connection_options())
    try:
        db.ensure_reachable(create=False)  # a status creates nothing
        return SchemaStatus(
            _config.display_url(cfg.database_url), db.schema_version(), LATEST_VERSION
        )
    finally:
        db.dispose()
