"""Recording and replay: the position each call takes, its record written
(refused when the workflow was cancelled or is no longer this run's), the
one place a refusal is resolved, and determinism checks on replay.

Every recorded call takes the next position in its workflow. On a fresh
workflow a call costs one write (the record's INSERT also checks that this
executor still owns the running workflow); on replay the recorded rows were
loaded once and the call returns its recorded value without running."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context import (
    WorkflowContext,
)
from .._errors import (
    NonDeterminismError,
    WfError,
    WorkflowCancelledError,
    _OwnershipLost,
    _ReplayEnd,
)
from .._records import Status
from .._serialization import dumps, dumps_error, loads, rebuild_error_json
from .._sysdb import StepRow, WorkflowRow
from .control import check_live

if TYPE_CHECKING:
    from .._sysdb import SystemDatabase
    from .runtime import Runtime

log = logging.getLogger("wf")

# the kind of a patch marker (patching.py); other calls step over them on replay
PATCH = "patch"


# -- determinism and replay -----------------------------------------------------------------


def check_determinism(
    ctx: WorkflowContext, position: int, rec: StepRow, name: str, kind: str
) -> None:
    if rec.name != name or rec.kind != kind:
        raise NonDeterminismError(
            f"workflow {ctx.workflow_id} position {position + 1}: recorded {rec.kind} {rec.name!r}, "
            f"this code called {kind} {name!r}. The run was recorded by other code: guard the "
            "change with `if wf.patched('change-id'):` so runs recorded before it keep the old "
            "path, or run them on the release that started them (app_version)"
        )


def replay(ctx: WorkflowContext, position: int, rec: StepRow, name: str, kind: str) -> Any:
    check_determinism(ctx, position, rec, name, kind)
    if rec.error is not None:
        raise rebuild_error_json(rec.error)
    return loads(rec.output)


class NotRecorded(Exception):
    """Raised inside a transaction whose record was refused: it rolls the
    transaction back before the refusal is resolved."""


@dataclass(frozen=True)
class Finished:
    """A call that ran to its end but whose record was refused: kept if the
    refusal was a cancellation, so a resume replays it instead of running a
    completed call again."""

    name: str
    kind: str
    output: str | None
    error: str | None
    started_at: int | None
    child_workflow_id: str | None = None
    attempts: int = 1
    detail: str | None = None


def resolve_refused(sysdb: SystemDatabase, ctx: WorkflowContext) -> None:
    """A write guarded by "this run still owns the workflow" was refused:
    raise WorkflowCancelledError if it was cancelled, else stop this run
    quietly (another executor adopted it, or it ended)."""
    row = sysdb.get_workflow(ctx.workflow_id)
    if row is not None and row.status == Status.CANCELLED and same_run(row, ctx):
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    raise _OwnershipLost()


def same_run(row: WorkflowRow, ctx: WorkflowContext) -> bool:
    """Is ``row`` the workflow row this run was started on (not one recorded
    later under the same ID after a delete)?"""
    return ctx.run_token is None or row.created_at == ctx.run_token


def resolve_unrecorded(
    ex: Runtime, ctx: WorkflowContext, position: int, finished: Finished | None = None
) -> StepRow:
    """Our write was refused. If the workflow was cancelled: keep the
    ``finished`` call's record (it completed; a resume must not run it again)
    and raise. If it is not ours any more (adopted by another executor, or
    ended): stop quietly, running nothing further. If it is still ours, the
    call is recorded already (our own write that committed before a
    connection dropped): return that record."""
    row = ex.sysdb.get_workflow(ctx.workflow_id)
    if row is not None and not same_run(row, ctx):
        raise _OwnershipLost()  # its workflow was deleted: the ID names another now
    if row is not None and row.status == Status.CANCELLED:
        ctx.cancelled = True
        if finished is not None and row.executor_id == ctx.executor_id:
            ex.sysdb.record_step(
                ctx.workflow_id,
                ctx.executor_id,
                position,
                finished.name,
                finished.kind,
                finished.output,
                finished.error,
                finished.started_at,
                child_workflow_id=finished.child_workflow_id,
                cancelled=True,
                attempts=finished.attempts,
                detail=finished.detail,
                run_token=ctx.run_token,
            )
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    if row is None or row.status != Status.PENDING or row.executor_id != ctx.executor_id:
        raise _OwnershipLost()
    rec = ex.sysdb.get_step(ctx.workflow_id, position)
    if rec is None:
        raise _OwnershipLost()
    return rec


def begin_call(
    ex: Runtime, ctx: WorkflowContext, name: str, kind: str
) -> tuple[int, StepRow | None]:
    """Start a recorded call: refuse calls from threads the workflow started,
    check the run may go on, take the next position; returns it and the
    call's record when this is a replay."""
    if ctx.owner_thread and threading.get_ident() != ctx.owner_thread:
        raise WfError(
            f"{kind} {name} was called from another thread than the one running workflow "
            f"{ctx.workflow_id}: a workflow's calls are recorded in call order, so make them "
            "from its own thread (in an async workflow, async steps run together with "
            "asyncio.gather)"
        )
    check_live(ex, ctx)
    pos = ctx.take_position()
    rec = ctx.recorded_at(pos)
    # patch markers belong to patch checks (patching.py): other calls step over them
    while rec is not None and rec.kind == PATCH and kind != PATCH:
        pos = ctx.take_position()
        rec = ctx.recorded_at(pos)
    if rec is None and ctx.dry:
        raise _ReplayEnd(pos, name, kind)
    return pos, rec


def step_record(
    ex: Runtime,
    ctx: WorkflowContext,
    pos: int,
    name: str,
    kind: str,
    started: int,
    value: Any,
    exc: BaseException | None,
    ended_at: int | None = None,
    *,
    attempts: int = 1,
    detail: str | None = None,
) -> Any:
    """Record a finished call and return its value as recorded (or raise its error)."""
    if exc is None:
        try:
            output: str | None = dumps(value)
            error = None
        except WfError as e:
            output, error, exc = None, dumps_error(e), e
    else:
        output, error = None, dumps_error(exc)
    done = Finished(name, kind, output, error, started, attempts=attempts, detail=detail)
    found = record(ex, ctx, pos, done, ended_at=ended_at)
    if found is not None:
        return replay(ctx, pos, found, name, kind)
    if exc is not None:
        raise exc
    return as_recorded(value, output)


def record(
    ex: Runtime, ctx: WorkflowContext, pos: int, call: Finished, *, ended_at: int | None = None
) -> StepRow | None:
    """Record-or-resolve, the one path of every recorded call written on its
    own (transactional calls write their record inside their transaction,
    raise NotRecorded to roll back, then resolve here too): one INSERT,
    refused unless this run still owns the running workflow. None when it
    was written; else the refusal resolved by ``resolve_unrecorded``."""
    if ex.sysdb.record_step(
        ctx.workflow_id,
        ctx.executor_id,
        pos,
        call.name,
        call.kind,
        call.output,
        call.error,
        call.started_at,
        child_workflow_id=call.child_workflow_id,
        ended_at=ended_at,
        attempts=call.attempts,
        detail=call.detail,
        run_token=ctx.run_token,
    ):
        return None
    return resolve_unrecorded(ex, ctx, pos, call)


_SCALARS = (str, int, bool, type(None))


def as_recorded(value: Any, output: str | None) -> Any:
    """The value as a replay will see it: decoded from its record, except for
    immutable JSON scalars, which decode to themselves."""
    if type(value) in _SCALARS:
        return value
    return loads(output)
