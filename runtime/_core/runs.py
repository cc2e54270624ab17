"""Running a workflow: its body in this thread or on an event loop, its end
recorded, a child's outcome recorded in its parent, and waiting for a
workflow's outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context import (
    WorkflowContext,
    _step,
    current,
)
from .._errors import (
    RetriesExceededError,
    WfError,
    WorkflowCancelledError,
    WorkflowNotFoundError,
    _OwnershipLost,
)
from .._records import Status
from .._registry import WorkflowSpec
from .._serialization import dumps, dumps_error, loads, rebuild_error_json
from .._sysdb import now_ms, wake_key
from .._tracing import set_outcome, workflow_span
from .control import TIMED_OUT, cancel_tree
from .recording import (
    Finished,
    record,
    same_run,
)
from .wakeups import Waiter, ensure_listener, notify_local

if TYPE_CHECKING:
    from .._sysdb import SystemDatabase
    from .runtime import Runtime

log = logging.getLogger("wf")


@dataclass
class Outcome:
    status: str
    output: str | None = None
    error: str | None = None
    exc: BaseException | None = None  # the original exception, on this process's first run
    written: bool = False  # this run's own write ended the workflow

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


# how often a waiter on a run of this process looks at the database meanwhile
# (for a cancel or a takeover from elsewhere; the run's end wakes it at once)
RUN_HERE_POLL_S = 0.1
# how long a waiter woken by a run's end waits for the run to return
RUN_END_GRACE_S = 0.05


def wait_outcome(
    sysdb: SystemDatabase,
    workflow_id: str,
    timeout: float | None,
    ex: Runtime | None,
    run: Future[Outcome | None] | None = None,
) -> Outcome:
    """Wait until the workflow ends; AwaitTimeoutError after ``timeout`` seconds.
    ``run``: this process's run of it (wf.start's): its SUCCESS, once written,
    is final and is taken from it without a read; any other end is read."""
    from .._errors import AwaitTimeoutError

    ensure_listener(sysdb.listen_url)
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.002 if run is None else RUN_HERE_POLL_S
    key = wake_key("w", workflow_id)
    # a workflow thread waiting gives its pool slot back: what it waits for can run
    waiting = ex.waiting() if ex is not None else contextlib.nullcontext()
    with waiting, Waiter(key) as waiter:
        if run is not None:
            run.add_done_callback(lambda _: notify_local(key))
        read = run is None
        while True:
            # a run here announces its end in-process (finish, or a lost
            # ownership in run_background): no need to ask the database to
            waiter.local = ex is not None and ex.runs_here(workflow_id)
            waiter.arm()
            if run is not None and run.done():
                ended = _success_of(run)
                if ended is not None:
                    return ended
                run, read = None, True
            remaining = None if deadline is None else deadline - time.monotonic()
            timed_out = remaining is not None and remaining <= 0
            if read or timed_out:
                out = sysdb.get_outcome(workflow_id)
                if out is None:
                    raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
                if out[0] in Status.ENDED:
                    return Outcome(out[0], out[1], out[2])
                if timed_out:
                    raise AwaitTimeoutError(
                        f"workflow {workflow_id} still {out[0]} after {timeout}s"
                    )
            waiter.wait(delay if remaining is None else min(delay, remaining))
            delay = min(delay * 2, 1.0)
            if run is not None and not run.done() and waiter.fired():
                # the run's finish announces its end a moment before the run
                # returns (an async one closes its event loop first)
                wait_futures([run], RUN_END_GRACE_S)
            # woken by the run's end: nothing to read; by a cancel relayed
            # from elsewhere, or no wake-up at all: read
            read = run is None or not run.done()


def _success_of(run: Future[Outcome | None]) -> Outcome | None:
    """The SUCCESS a finished run of this process wrote; None: read the end
    (an error may be resumed since, a lost run's end is another's)."""
    if run.cancelled() or run.exception() is not None:
        return None
    out = run.result()
    if out is None or out.status != Status.SUCCESS:
        return None
    return Outcome(out.status, out.output)


# -- workflows ---------------------------------------------------------------------------


def run_body(
    ex: Runtime, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    """Run a sync workflow body in this thread and record how it ended."""
    with workflow_span(ctx.workflow_id, spec.name, ctx.executor_id) as span:
        outcome = _run_body(ex, spec, ctx, args, kwargs)
        set_outcome(span, outcome.status, outcome.exc)
        return outcome


@contextlib.contextmanager
def running(ctx: WorkflowContext) -> Iterator[None]:
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
    ex: Runtime, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    with running(ctx):
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
    ex: Runtime, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    with workflow_span(ctx.workflow_id, spec.name, ctx.executor_id) as span:
        outcome = await _run_body_async(ex, spec, ctx, args, kwargs)
        set_outcome(span, outcome.status, outcome.exc)
        return outcome


async def _run_body_async(
    ex: Runtime, spec: WorkflowSpec, ctx: WorkflowContext, args: Any, kwargs: Any
) -> Outcome:
    with running(ctx):
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


def finish(ex: Runtime, ctx: WorkflowContext, value: Any, exc: BaseException | None) -> Outcome:
    """Record the run's outcome (``Outcome.written``: this run's own write
    ended the workflow, and with it freed any queue slot)."""
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
            cancel_tree(ex.sysdb, ctx.workflow_id, TIMED_OUT)
        out = Outcome(Status.ERROR, error=dumps_error(exc), exc=exc)
    done = ex.sysdb.finish_workflow(
        ctx.workflow_id, ctx.executor_id, out.status, out.output, out.error, ctx.run_token
    )
    out.written = done
    if not done:
        row = ex.sysdb.get_workflow(ctx.workflow_id)
        if row is None or row.status == Status.PENDING or not same_run(row, ctx):
            raise _OwnershipLost()
        if row.status == Status.CANCELLED:
            # this run has stopped: a resume waiting for it may go ahead
            ex.sysdb.release_cancelled_run(ctx.workflow_id, ctx.executor_id, ctx.run_token)
        out = Outcome(
            row.status, row.output, row.error, exc if row.status == Status.ERROR else None
        )
    ex.notify_ended()
    notify_local(wake_key("w", ctx.workflow_id))
    return out


def run_background(
    ex: Runtime,
    spec: WorkflowSpec,
    ctx: WorkflowContext,
    inputs: tuple[list[Any], dict[str, Any]] | str,
) -> Outcome | None:
    """Entry point of a workflow run in the executor's thread pool. ``inputs``
    is (args, kwargs) for a fresh workflow, or the recorded inputs of one to
    replay (its recorded calls are loaded here, once). The outcome (without
    the exception object) when this run's own write ended the workflow."""
    try:
        if isinstance(inputs, str):
            if ctx.recorded is None:
                ctx.recorded = {s.position: s for s in ex.sysdb.get_steps(ctx.workflow_id)}
            decoded = loads(inputs) or {}
            args, kwargs = list(decoded.get("args", [])), dict(decoded.get("kwargs", {}))
        else:
            args, kwargs = inputs
        if spec.is_async:
            out = asyncio.run(run_body_async(ex, spec, ctx, args, kwargs))
        else:
            out = run_body(ex, spec, ctx, args, kwargs)
        # (a handle held for long must not keep the error's frames alive)
        return Outcome(out.status, out.output, out.error, written=True) if out.written else None
    except _OwnershipLost:
        log.info("%s is no longer ours; stopped", ctx.workflow_id)
        # a local waiter stops relying on this run to wake it
        notify_local(wake_key("w", ctx.workflow_id))
    except Exception:
        log.exception("wf: internal error running %s", ctx.workflow_id)
    return None


def record_child(
    ex: Runtime, parent: WorkflowContext, position: int, name: str, child_id: str, outcome: Outcome
) -> None:
    """The parent records a child it ran (called directly): its outcome."""
    done = Finished(name, "child", outcome.output, outcome.error, None, child_workflow_id=child_id)
    record(ex, parent, position, done)
