"""How one workflow, step or transaction call runs and is recorded.

Every recorded call takes the next position in its workflow. On a fresh
workflow a call costs one write (the step row, whose INSERT also checks that
this executor still owns the running workflow); on replay the recorded rows
were loaded once and the call returns its recorded value without running."""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from ._context import WorkflowContext, current, take_assigned_id
from ._errors import (
    ConfigurationError,
    NonDeterminismError,
    RetriesExceededError,
    WfError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowNotFoundError,
    _OwnershipLost,
)
from ._records import Status
from ._registry import WorkflowSpec
from ._serialization import dumps, dumps_error, loads, rebuild_error_json
from ._sysdb import StepRow, now_ms
from ._sysdb.engine import is_connection_error
from ._tracing import call_span, set_outcome, workflow_span

if TYPE_CHECKING:
    from ._executor import Executor
    from ._sysdb import SystemDatabase

log = logging.getLogger("wf")


@dataclass
class Outcome:
    status: str
    output: str | None = None
    error: str | None = None
    exc: BaseException | None = None  # the original exception, on this process's first run

    def result(self, workflow_id: str) -> Any:
        """The value (as recorded and read back), or the error raised."""
        if self.status == Status.SUCCESS:
            return loads(self.output)
        if self.status == Status.ERROR:
            if self.exc is not None:
                raise self.exc
            raise rebuild_error_json(self.error) if self.error else WfError("unknown error")
        if self.status == Status.CANCELLED:
            raise WorkflowCancelledError(f"workflow {workflow_id} was cancelled")
        if self.status == Status.RETRIES_EXCEEDED:
            raise RetriesExceededError(f"workflow {workflow_id} exceeded its recovery attempts")
        raise WfError(f"workflow {workflow_id} has not ended ({self.status})")


# -- waiting ---------------------------------------------------------------------------


def wait_outcome(
    sysdb: SystemDatabase, workflow_id: str, timeout: float | None, ex: Executor | None
) -> Outcome:
    """Wait until the workflow ends; AwaitTimeoutError after ``timeout`` seconds."""
    from ._errors import AwaitTimeoutError
    from ._notify import Waiter, ensure_listener, wake_key

    ensure_listener(sysdb.url)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    waiter = Waiter(wake_key("w", workflow_id))
    while True:
        waiter.arm()
        out = sysdb.get_outcome(workflow_id)
        if out is None:
            raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
        if out[0] in Status.ENDED:
            return Outcome(out[0], out[1], out[2])
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise AwaitTimeoutError(f"workflow {workflow_id} still {out[0]} after {timeout}s")
        waiter.wait(delay if remaining is None else min(delay, remaining))
        delay = min(delay * 2, 1.0)


# -- workflows ---------------------------------------------------------------------------


@dataclass
class Started:
    """A workflow row we inserted: we run the body."""

    ctx: WorkflowContext
    parent: WorkflowContext | None
    parent_position: int | None
    inputs: str

    def decoded_args(self) -> tuple[list[Any], dict[str, Any]]:
        """The inputs as recorded and read back: the body sees on its first
        run exactly what it will see on a replay."""
        d = loads(self.inputs)
        return list(d["args"]), dict(d["kwargs"])


@dataclass
class Existing:
    """The ID was recorded already (or the call is replayed): no new run."""

    workflow_id: str
    outcome: Outcome | None  # known now (replayed child), else wait for it
    parent: WorkflowContext | None = None
    parent_position: int | None = None
    recorded: bool = False  # the parent already holds this call's record


MAX_ID_BYTES = 1024
MAX_CHILD_DEPTH = 100


def check_workflow_id(workflow_id: str) -> None:
    """IDs are keys of indexed columns: bounded, so a huge one is refused
    up front instead of failing inside the database."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ConfigurationError("a workflow ID is a non-empty string")
    n = len(workflow_id.encode("utf-8", "surrogatepass"))
    if n > MAX_ID_BYTES:
        raise ConfigurationError(f"workflow ID is too long ({n:,} bytes; at most {MAX_ID_BYTES:,})")


def encode_inputs(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    return dumps({"args": list(args), "kwargs": kwargs})


def begin_workflow(
    sysdb: SystemDatabase,
    executor_id: str | None,
    spec: WorkflowSpec,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    priority: int = 0,
    dedup_id: str | None = None,
    delay: float | None = None,
) -> Started | Existing:
    """Record a new workflow (or find the recorded one with this ID)."""
    inputs = encode_inputs(args, kwargs)  # SerializationError before anything is written
    parent = current.get()
    if parent is not None and parent.in_step is not None:
        parent = None  # a workflow started from inside a step is not a child
    parent_position = None
    wid = workflow_id or take_assigned_id()
    if parent is not None:
        parent_position = parent.take_position()
        rec = parent.recorded_at(parent_position)
        if rec is not None:
            check_determinism(parent, parent_position, rec, spec.name, "child")
            cid = rec.child_workflow_id or f"{parent.workflow_id}-{parent_position + 1}"
            if rec.output is None and rec.error is None:  # recorded by wf.start: a handle
                return Existing(cid, None, parent, parent_position, recorded=True)
            status = Status.ERROR if rec.error is not None else Status.SUCCESS
            return Existing(
                cid, Outcome(status, rec.output, rec.error), parent, parent_position, recorded=True
            )
        if wid is None:
            wid = f"{parent.workflow_id}-{parent_position + 1}"
    if wid is None:
        wid = str(uuid.uuid4())
    check_workflow_id(wid)
    if parent is not None and parent.depth >= MAX_CHILD_DEPTH:
        raise WfError(
            f"child workflows nested deeper than {MAX_CHILD_DEPTH} levels (runaway recursion?)"
        )
    status = Status.PENDING if queue is None else Status.ENQUEUED
    if status == Status.PENDING and executor_id is None:
        raise WfError("internal: a workflow run here needs an executor")
    inserted = sysdb.insert_workflow(
        workflow_id=wid,
        status=status,
        name=spec.name,
        inputs=inputs,
        executor_id=executor_id if status == Status.PENDING else None,
        queue=queue,
        priority=priority,
        dedup_id=dedup_id,
        parent_workflow_id=parent.workflow_id if parent else None,
        max_recovery_attempts=spec.max_recovery_attempts,
        timeout=timeout,
        delay=delay,
    )
    if not inserted:
        row = sysdb.get_workflow(wid)
        if row is None:  # deleted in between; vanishingly rare
            raise WfError(f"workflow {wid} vanished while starting")
        if row.name != spec.name:
            raise WorkflowConflictError(
                f"workflow ID {wid!r} is already recorded for {row.name}, not {spec.name}"
            )
        return Existing(wid, None, parent, parent_position)
    deadline = (
        now_ms() + int(timeout * 1000) if timeout is not None and status == Status.PENDING else None
    )
    ctx = WorkflowContext(
        workflow_id=wid,
        name=spec.name,
        executor_id=executor_id or "",
        deadline_ms=deadline,
        depth=parent.depth + 1 if parent is not None else 0,
    )
    return Started(ctx, parent, parent_position, inputs)


def run_body(
    ex: Executor, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    """Run a sync workflow body in this thread and record how it ended."""
    with workflow_span(ctx.workflow_id, spec.name, ctx.executor_id) as span:
        outcome = _run_body(ex, spec, ctx, args, kwargs)
        set_outcome(span, outcome.status, outcome.exc)
        return outcome


def _run_body(
    ex: Executor, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    token = current.set(ctx)
    try:
        value = spec.fn(*args, **kwargs)
    except _OwnershipLost:
        raise
    except RecursionError as e:
        # recording the error needs stack that the recursion used up
        with _more_stack():
            return finish(ex, ctx, None, e)
    except Exception as e:
        return finish(ex, ctx, None, e)
    finally:
        current.reset(token)
    return finish(ex, ctx, value, None)


@contextlib.contextmanager
def _more_stack(extra: int = 2000) -> Iterator[None]:
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + extra)
    try:
        yield
    finally:
        sys.setrecursionlimit(limit)


async def run_body_async(
    ex: Executor, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    with workflow_span(ctx.workflow_id, spec.name, ctx.executor_id) as span:
        outcome = await _run_body_async(ex, spec, ctx, args, kwargs)
        set_outcome(span, outcome.status, outcome.exc)
        return outcome


async def _run_body_async(
    ex: Executor, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    import asyncio

    token = current.set(ctx)
    try:
        value = await spec.fn(*args, **kwargs)
    except _OwnershipLost:
        raise
    except Exception as e:
        return await asyncio.to_thread(finish, ex, ctx, None, e)
    finally:
        current.reset(token)
    return await asyncio.to_thread(finish, ex, ctx, value, None)


def finish(ex: Executor, ctx: WorkflowContext, value: Any, exc: BaseException | None) -> Outcome:
    if exc is None:
        try:
            out = Outcome(Status.SUCCESS, output=dumps(value))
        except WfError as e:
            out = Outcome(Status.ERROR, error=dumps_error(e), exc=e)
    else:
        # a WorkflowCancelledError may come from a cancelled child while this
        # workflow is not cancelled: then it is this workflow's error
        out = Outcome(Status.ERROR, error=dumps_error(exc), exc=exc)
    done = ex.sysdb.finish_workflow(
        ctx.workflow_id, ctx.executor_id, out.status, out.output, out.error
    )
    if not done:
        row = ex.sysdb.get_outcome(ctx.workflow_id)
        if row is None or row[0] == Status.PENDING:
            raise _OwnershipLost()
        out = Outcome(row[0], row[1], row[2], exc if row[0] == Status.ERROR else None)
    ex.notify_ended()
    from ._notify import notify_local, wake_key

    notify_local(wake_key("w", ctx.workflow_id))
    return out


def run_background(
    ex: Executor,
    spec: WorkflowSpec,
    ctx: WorkflowContext,
    inputs: tuple[list[Any], dict[str, Any]] | str,
) -> None:
    """Entry point of a workflow run in the executor's thread pool. ``inputs``
    is (args, kwargs) for a fresh workflow, or the recorded inputs of one to
    replay (its recorded calls are loaded here, once)."""
    try:
        if isinstance(inputs, str):
            if ctx.recorded is None:
                ctx.recorded = {s.position: s for s in ex.sysdb.get_steps(ctx.workflow_id)}
            decoded = loads(inputs) or {}
            args, kwargs = list(decoded.get("args", [])), dict(decoded.get("kwargs", {}))
        else:
            args, kwargs = inputs
        if spec.is_async:
            from ._executor import run_coroutine

            run_coroutine(run_body_async(ex, spec, ctx, args, kwargs))
        else:
            run_body(ex, spec, ctx, args, kwargs)
    except _OwnershipLost:
        log.info("%s is no longer ours; stopped", ctx.workflow_id)
    except Exception:
        log.exception("wf: internal error running %s", ctx.workflow_id)


def record_child(
    ex: Executor, parent: WorkflowContext, position: int, name: str, child_id: str, outcome: Outcome
) -> None:
    ok = ex.sysdb.record_step(
        parent.workflow_id,
        parent.executor_id,
        position,
        name,
        "child",
        outcome.output,
        outcome.error,
        None,
        child_workflow_id=child_id,
    )
    if not ok:
        resolve_unrecorded(ex, parent, position)


# -- determinism and replay -----------------------------------------------------------------


def check_determinism(
    ctx: WorkflowContext, position: int, rec: StepRow, name: str, kind: str
) -> None:
    if rec.name != name or rec.kind != kind:
        raise NonDeterminismError(
            f"workflow {ctx.workflow_id} position {position + 1}: recorded {rec.kind} {rec.name!r}, "
            f"replay called {kind} {name!r}"
        )


def replay(ctx: WorkflowContext, position: int, rec: StepRow, name: str, kind: str) -> Any:
    check_determinism(ctx, position, rec, name, kind)
    if rec.error is not None:
        raise rebuild_error_json(rec.error)
    return loads(rec.output)


def resolve_unrecorded(ex: Executor, ctx: WorkflowContext, position: int) -> StepRow:
    """Our write was refused. If the workflow was cancelled: raise that. If
    it is not ours any more (adopted by another executor, or ended): stop
    quietly, running nothing further. If it is still ours, the call is
    recorded already (our own write that committed before a connection
    dropped): return that record."""
    row = ex.sysdb.get_workflow(ctx.workflow_id)
    if row is not None and row.status == Status.CANCELLED:
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    if row is None or row.status != Status.PENDING or row.executor_id != ctx.executor_id:
        raise _OwnershipLost()
    rec = ex.sysdb.get_step(ctx.workflow_id, position)
    if rec is None:
        raise _OwnershipLost()
    return rec


def check_live(ex: Executor, ctx: WorkflowContext) -> None:
    """Cheap local checks before a call: shutdown, and the workflow's deadline."""
    if ex.stopping.is_set():
        raise _OwnershipLost()
    if ctx.deadline_ms is not None and now_ms() > ctx.deadline_ms:
        from ._api import cancel_in

        cancel_in(ex.sysdb, ctx.workflow_id)
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} timed out")


# -- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 0)."""
        return min(self.interval * (self.backoff**attempt), self.max_interval)


def step_begin(
    ex: Executor, ctx: WorkflowContext, name: str, kind: str
) -> tuple[int, StepRow | None]:
    check_live(ex, ctx)
    pos = ctx.take_position()
    return pos, ctx.recorded_at(pos)


def step_record(
    ex: Executor,
    ctx: WorkflowContext,
    pos: int,
    name: str,
    kind: str,
    started: int,
    value: Any,
    exc: BaseException | None,
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
    if not ex.sysdb.record_step(
        ctx.workflow_id, ctx.executor_id, pos, name, kind, output, error, started
    ):
        return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, kind)
    if exc is not None:
        raise exc
    return as_recorded(value, output)


_SCALARS = (str, int, bool, type(None))


def as_recorded(value: Any, output: str | None) -> Any:
    """The value as a replay will see it: decoded from its record, except for
    immutable JSON scalars, which decode to themselves."""
    if type(value) in _SCALARS:
        return value
    return loads(output)


def run_with_retries(
    ex: Executor | None, policy: RetryPolicy, name: str, call: Callable[[], Any]
) -> Any:
    attempt = 0
    while True:
        try:
            return call()
        except Exception as e:
            if attempt >= policy.retries or isinstance(e, WfError):
                raise
            delay = policy.delay(attempt)
            log.warning(
                "wf: step %s failed (attempt %d of %d), retrying in %.3gs: %s",
                name,
                attempt + 1,
                policy.retries + 1,
                delay,
                e,
            )
            if ex is not None and ex.stopping.wait(delay):
                raise _OwnershipLost() from None
            if ex is None:
                time.sleep(delay)
            attempt += 1


# -- transactions ------------------------------------------------------------------------------


class _NotRecorded(Exception):
    pass


def is_serialization_failure(e: BaseException) -> bool:
    orig = getattr(e, "orig", None)
    code = getattr(orig, "sqlstate", None)
    return code in ("40001", "40P01")


def run_transaction(
    ex: Executor,
    ctx: WorkflowContext | None,
    name: str,
    call: Callable[[], Any],
    isolation: str,
    read_only: bool,
) -> Any:
    """Run ``call`` inside a database transaction; inside a workflow, record
    its output in the same commit (exactly once)."""
    pos = -1
    if ctx is not None:
        pos, rec = step_begin(ex, ctx, name, "transaction")
        if rec is not None:
            return replay(ctx, pos, rec, name, "transaction")
        if not ex.same_db and ctx.recorded is not None:
            found, out = ex.appdb.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
            if found:
                return step_record(ex, ctx, pos, name, "transaction", now_ms(), loads(out), None)
    with call_span("transaction", name, ctx.workflow_id if ctx else None, pos):
        return _transact(ex, ctx, name, call, isolation, read_only, pos)


def _transact(
    ex: Executor,
    ctx: WorkflowContext | None,
    name: str,
    call: Callable[[], Any],
    isolation: str,
    read_only: bool,
    pos: int,
) -> Any:
    """The transaction itself, retried through serialization failures and
    (inside a workflow) outages."""
    from ._decorators import _tx_conn

    db = ex.appdb
    pg = db.dialect == "postgresql"
    # the step row goes in the user's commit when both live in one database
    in_commit = ctx is not None and ex.same_db and not (read_only and pg)
    attempt = 0
    outage_wait: float | None = None
    started = now_ms()
    while True:
        output: str | None = None
        try:
            with db.transaction(isolation if pg else None, read_only=read_only and pg) as conn:
                token = _tx_conn.set(conn)
                if ctx is not None:
                    ctx.in_step = name
                try:
                    value = call()
                finally:
                    _tx_conn.reset(token)
                    if ctx is not None:
                        ctx.in_step = None
                output = dumps(value)
                if ctx is not None and in_commit:
                    if not ex.sysdb.record_step(
                        ctx.workflow_id,
                        ctx.executor_id,
                        pos,
                        name,
                        "transaction",
                        output,
                        None,
                        started,
                        conn=conn,
                    ):
                        raise _NotRecorded()
                elif ctx is not None and not ex.same_db:
                    try:
                        db.insert_tx_output(conn, ctx.workflow_id, pos, output)  # type: ignore[union-attr]
                    except sa_exc.IntegrityError:
                        raise _NotRecorded() from None
            break
        except _NotRecorded:
            assert ctx is not None
            if not ex.same_db:
                found, out = db.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
                if found:
                    return step_record(ex, ctx, pos, name, "transaction", started, loads(out), None)
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, "transaction")
        except (sa_exc.OperationalError, sa_exc.DBAPIError) as e:
            if is_serialization_failure(e) and attempt < 20:
                attempt += 1
                time.sleep(min(0.001 * 2**attempt, 0.5))
                continue
            if is_connection_error(e) and ctx is not None:
                # the transaction rolled back with its connection (or it
                # committed and only the answer was lost: then the retry
                # finds its record); wait for the database and run it again
                outage_wait = db.wait_for_database(outage_wait, e)
                continue
            if ctx is None:
                raise
            return step_record(ex, ctx, pos, name, "transaction", started, None, e)
        except Exception as e:
            if ctx is None:
                raise
            return step_record(ex, ctx, pos, name, "transaction", started, None, e)
    if ctx is None:
        return loads(output)
    if in_commit:
        return loads(output)
    return step_record(ex, ctx, pos, name, "transaction", started, loads(output), None)
