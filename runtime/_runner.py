"""How one workflow, step or transaction call runs and is recorded.

Every recorded call takes the next position in its workflow. On a fresh
workflow a call costs one write (the step row, whose INSERT also checks that
this executor still owns the running workflow); on replay the recorded rows
were loaded once and the call returns its recorded value without running."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import exc as sa_exc

from ._context import (
    WorkflowContext,
    _step,
    current,
    current_step,
    in_step,
    take_assigned_id,
    tx_connection,
    workflow_here,
)
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
from ._notify import Waiter, ensure_listener, notify_local, wake_key
from ._records import Status
from ._registry import WorkflowSpec
from ._serialization import dumps, dumps_error, loads, rebuild_error_json
from ._sysdb import StepRow, now_ms
from ._sysdb.engine import is_connection_error
from ._sysdb.txguard import user_transaction
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

    ensure_listener(sysdb.url)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002
    # a workflow thread waiting gives its pool slot back: what it waits for can run
    waiting = ex.waiting() if ex is not None else contextlib.nullcontext()
    with waiting, Waiter(wake_key("w", workflow_id)) as waiter:
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


@dataclass
class ChildSlot:
    """The position a child workflow (or a restart) takes in its parent,
    reserved in the parent's own thread, in call order."""

    parent: WorkflowContext
    position: int
    recorded: StepRow | None

    @property
    def derived_id(self) -> str:
        return f"{self.parent.workflow_id}-{self.position + 1}"


def reserve_child(ex: Executor | None, name: str) -> ChildSlot | None:
    """Inside a workflow body: the next position, for a child called ``name``.
    Outside one (or inside a step): None, the workflow is not a child."""
    parent = workflow_here()
    if parent is None or ex is None:
        return None
    pos, rec = begin_call(ex, parent, name, "child")
    return ChildSlot(parent, pos, rec)


def begin_workflow(
    sysdb: SystemDatabase,
    executor_id: str | None,
    spec: WorkflowSpec,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    slot: ChildSlot | None = None,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    priority: int = 0,
    dedup_id: str | None = None,
    delay: float | None = None,
) -> Started | Existing:
    """Record a new workflow (or find the recorded one with this ID). A child
    (``slot``) is inserted only while its parent is still running here, so a
    child called after its parent was cancelled never runs."""
    inputs = encode_inputs(args, kwargs)  # SerializationError before anything is written
    parent = slot.parent if slot is not None else None
    parent_position = slot.position if slot is not None else None
    wid = workflow_id or take_assigned_id()
    if slot is not None and slot.recorded is not None:
        rec = slot.recorded
        check_determinism(slot.parent, slot.position, rec, spec.name, "child")
        cid = rec.child_workflow_id or slot.derived_id
        if rec.output is None and rec.error is None:  # recorded by wf.start: a handle
            return Existing(cid, None, parent, parent_position, recorded=True)
        status = Status.ERROR if rec.error is not None else Status.SUCCESS
        return Existing(
            cid, Outcome(status, rec.output, rec.error), parent, parent_position, recorded=True
        )
    derived = wid is None and slot is not None
    if slot is not None and wid is None:
        wid = slot.derived_id
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
    now = now_ms()
    deadline = now + int(timeout * 1000) if timeout is not None and queue is None else None
    if parent is not None and parent.deadline_ms is not None:
        # SPEC §3: past its timeout a workflow *and its children* are cancelled,
        # also those still running or queued when the parent has ended
        deadline = parent.deadline_ms if deadline is None else min(deadline, parent.deadline_ms)
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
        parent_executor_id=parent.executor_id if parent else None,
        max_recovery_attempts=spec.max_recovery_attempts,
        timeout=timeout,
        deadline=deadline,
        delay=delay,
        now=now,
    )
    if not inserted:
        row = sysdb.get_workflow(wid)
        if row is None:
            if parent is not None:  # refused: the parent is no longer running here
                resolve_refused(sysdb, parent)
            raise WfError(f"workflow {wid} vanished while starting")
        if row.name != spec.name:
            raise WorkflowConflictError(
                f"workflow ID {wid!r} is already recorded for {row.name}, not {spec.name}"
            )
        if (
            derived
            and parent is not None
            and (row.parent_workflow_id != parent.workflow_id or row.inputs != inputs)
        ):
            # the derived ID names another workflow (started by hand, or by
            # another parent): never hand its result to this call
            raise WorkflowConflictError(
                f"workflow ID {wid!r} (child {parent_position + 1 if parent_position is not None else '?'} "
                f"of {parent.workflow_id}) is already recorded for another workflow"
            )
        return Existing(wid, None, parent, parent_position)
    ctx = WorkflowContext(
        workflow_id=wid,
        name=spec.name,
        executor_id=executor_id or "",
        deadline_ms=deadline if status == Status.PENDING else None,
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


@contextlib.contextmanager
def _running(ctx: WorkflowContext) -> Iterator[None]:
    """The body's frame: this workflow is current (and no step is), its
    calls take positions in this thread, and a cancel announced for it is
    seen before its next call."""
    ctx.owner_thread = threading.get_ident()
    watch = ctx.cancel_watch = Waiter(wake_key("c", ctx.workflow_id))
    watch.arm()
    token = current.set(ctx)
    step_token = _step.set(None)  # a workflow started inside a step is not in it
    try:
        yield
    finally:
        _step.reset(step_token)
        current.reset(token)
        watch.close()


def _run_body(
    ex: Executor, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    with _running(ctx):
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
    with _running(ctx):
        try:
            value = await spec.fn(*args, **kwargs)
        except _OwnershipLost:
            raise
        except RecursionError as e:
            with _more_stack():
                return await asyncio.to_thread(finish, ex, ctx, None, e)
        except Exception as e:
            return await asyncio.to_thread(finish, ex, ctx, None, e)
    return await asyncio.to_thread(finish, ex, ctx, value, None)


def finish(ex: Executor, ctx: WorkflowContext, value: Any, exc: BaseException | None) -> Outcome:
    if exc is None:
        try:
            out = Outcome(Status.SUCCESS, output=dumps(value))
        except WfError as e:
            out = Outcome(Status.ERROR, error=dumps_error(e), exc=e)
    else:
        # a WorkflowCancelledError may come from a cancelled child while this
        # workflow is not cancelled: then it is this workflow's error, unless
        # its own deadline passed too (a child inherits it and may see it first)
        if (
            isinstance(exc, WorkflowCancelledError)
            and ctx.deadline_ms is not None
            and now_ms() > ctx.deadline_ms
        ):
            cancel_tree(ex.sysdb, ctx.workflow_id)
        out = Outcome(Status.ERROR, error=dumps_error(exc), exc=exc)
    done = ex.sysdb.finish_workflow(
        ctx.workflow_id, ctx.executor_id, out.status, out.output, out.error
    )
    if not done:
        row = ex.sysdb.get_outcome(ctx.workflow_id)
        if row is None or row[0] == Status.PENDING:
            raise _OwnershipLost()
        if row[0] == Status.CANCELLED:
            # this run has stopped: a resume waiting for it may go ahead
            ex.sysdb.release_cancelled_run(ctx.workflow_id, ctx.executor_id)
        out = Outcome(row[0], row[1], row[2], exc if row[0] == Status.ERROR else None)
    ex.notify_ended()
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
            asyncio.run(run_body_async(ex, spec, ctx, args, kwargs))
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


def resolve_refused(sysdb: SystemDatabase, ctx: WorkflowContext) -> None:
    """A write guarded by "this run still owns the workflow" was refused:
    raise WorkflowCancelledError if it was cancelled, else stop this run
    quietly (another executor adopted it, or it ended)."""
    row = sysdb.get_workflow(ctx.workflow_id)
    if row is not None and row.status == Status.CANCELLED:
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    raise _OwnershipLost()


def resolve_unrecorded(
    ex: Executor, ctx: WorkflowContext, position: int, finished: Finished | None = None
) -> StepRow:
    """Our write was refused. If the workflow was cancelled: keep the
    ``finished`` call's record (it completed; a resume must not run it again)
    and raise. If it is not ours any more (adopted by another executor, or
    ended): stop quietly, running nothing further. If it is still ours, the
    call is recorded already (our own write that committed before a
    connection dropped): return that record."""
    row = ex.sysdb.get_workflow(ctx.workflow_id)
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
            )
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    if row is None or row.status != Status.PENDING or row.executor_id != ctx.executor_id:
        raise _OwnershipLost()
    rec = ex.sysdb.get_step(ctx.workflow_id, position)
    if rec is None:
        raise _OwnershipLost()
    return rec


# -- cancellation and deadlines ---------------------------------------------------------------


def cancel_tree(db: SystemDatabase, workflow_id: str) -> None:
    """Cancel a workflow and, recursively, its children; runs in this process
    see it before their next call (other processes through NOTIFY)."""
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


def check_live(ex: Executor, ctx: WorkflowContext) -> None:
    """Before a call: shutdown, the deadline, and a cancel announced for this
    workflow. No round trip unless a cancel was announced."""
    if ex.stopping.is_set():
        raise _OwnershipLost()
    if ctx.cancelled:  # the body caught the cancellation and called on
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    if ctx.deadline_ms is not None and now_ms() > ctx.deadline_ms:
        cancel_tree(ex.sysdb, ctx.workflow_id)
        ctx.cancelled = True
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} timed out")
    watch = ctx.cancel_watch
    if watch is not None and watch.fired():
        watch.arm()
        out = ex.sysdb.get_outcome(ctx.workflow_id)
        if out is not None and out[0] == Status.CANCELLED:
            ctx.cancelled = True
            raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")


def begin_call(
    ex: Executor, ctx: WorkflowContext, name: str, kind: str
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
    return pos, ctx.recorded_at(pos)


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

    def retry_after(self, attempt: int, name: str, e: Exception) -> float | None:
        """The wait before the next attempt after ``e``, or None to give up;
        logs the retry. One rule for sync and async steps."""
        if attempt >= self.retries or isinstance(e, WfError):
            return None
        delay = self.delay(attempt)
        log.warning(
            "step %s failed (attempt %d of %d), retrying in %.3gs: %s",
            name,
            attempt + 1,
            self.retries + 1,
            delay,
            e,
        )
        return delay


def step_record(
    ex: Executor,
    ctx: WorkflowContext,
    pos: int,
    name: str,
    kind: str,
    started: int,
    value: Any,
    exc: BaseException | None,
    ended_at: int | None = None,
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
        ctx.workflow_id, ctx.executor_id, pos, name, kind, output, error, started, ended_at=ended_at
    ):
        done = Finished(name, kind, output, error, started)
        return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos, done), name, kind)
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
            delay = policy.retry_after(attempt, name, e)
            if delay is None:
                raise
            if ex is not None and ex.stopping.wait(delay):
                raise _OwnershipLost() from None
            if ex is None:
                time.sleep(delay)
            attempt += 1


async def run_with_retries_async(
    ex: Executor | None, policy: RetryPolicy, name: str, call: Callable[[], Any]
) -> Any:
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as e:
            delay = policy.retry_after(attempt, name, e)
            if delay is None:
                raise
            # wake on shutdown as the sync twin does: poll it while sleeping
            end = time.monotonic() + delay
            while True:
                if ex is not None and ex.stopping.is_set():
                    raise _OwnershipLost() from None
                left = end - time.monotonic()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 0.1))
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
    slot: tuple[int, StepRow | None] | None = None,
) -> Any:
    """Run ``call`` inside a database transaction; inside a workflow, record
    its output in the same commit (exactly once). ``slot``: the position,
    already taken in the workflow's thread (an async transaction)."""
    pos = -1
    if ctx is not None:
        pos, rec = slot if slot is not None else begin_call(ex, ctx, name, "transaction")
        if rec is not None:
            return replay(ctx, pos, rec, name, "transaction")
        if not ex.same_db and ctx.recorded is not None:
            found, out = ex.appdb.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
            if found:
                return step_record(ex, ctx, pos, name, "transaction", now_ms(), loads(out), None)
    with call_span("transaction", name, ctx.workflow_id if ctx else None, pos):
        if ctx is None:
            return _transact(ex, ctx, name, call, isolation, read_only, pos)
        with in_step(name, pos) as state:
            state.held_logs = []
            try:
                return _transact(ex, ctx, name, call, isolation, read_only, pos)
            finally:
                held, state.held_logs = state.held_logs, None
                for row in held:
                    with contextlib.suppress(Exception):
                        ex.sysdb.insert_log(*row)


def _recorded_already(
    ex: Executor, ctx: WorkflowContext, pos: int, name: str, started: int
) -> tuple[bool, Any]:
    """After a connection error: did the attempt commit (only its answer was
    lost)? Then its record is there, and the body must not run again."""
    if ex.same_db:
        rec = ex.sysdb.get_step(ctx.workflow_id, pos)
        if rec is not None:
            return True, replay(ctx, pos, rec, name, "transaction")
        return False, None
    found, out = ex.appdb.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
    if found:
        return True, step_record(ex, ctx, pos, name, "transaction", started, loads(out), None)
    return False, None


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
    db = ex.appdb
    pg = db.dialect == "postgresql"
    # the step row goes in the user's commit when both live in one database
    in_commit = ctx is not None and ex.same_db and not (read_only and pg)
    attempt = 0
    outage_wait: float | None = None
    started = now_ms()
    state = current_step() if ctx is not None else None
    while True:
        output: str | None = None
        if state is not None and state.held_logs is not None:
            # a retried attempt's lines replace the rolled-back attempt's
            state.log_seq = 0
            state.held_logs.clear()
        try:
            with db.transaction(isolation if pg else None, read_only=read_only and pg) as conn:
                token = tx_connection.set(conn)
                try:
                    with user_transaction(conn):
                        value = call()
                finally:
                    tx_connection.reset(token)
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
                    # a refusal means this output is recorded already: our own
                    # earlier attempt committed and only its answer was lost
                    if not db.insert_tx_output(conn, ctx.workflow_id, pos, output):  # type: ignore[union-attr]
                        raise _NotRecorded()
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
                # the transaction rolled back with its connection, or it
                # committed and only the answer was lost: wait for the
                # database, look for its record, and only then run it again
                outage_wait = db.wait_for_database(outage_wait, e)
                done, value = _recorded_already(ex, ctx, pos, name, started)
                if done:
                    return value
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
