"""The decorators: @workflow, @step (alias communicator), @transaction, and wf.db()."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar, cast, overload

from sqlalchemy.engine import Connection

from . import _executor
from ._context import WorkflowContext, current, take_assigned_id
from ._errors import ConfigurationError, WfError, _OwnershipLost
from ._registry import WorkflowSpec, qualified_name, register_workflow
from ._runner import (
    Existing,
    Outcome,
    RetryPolicy,
    Started,
    begin_workflow,
    record_child,
    replay,
    run_body,
    run_body_async,
    run_transaction,
    run_with_retries,
    step_begin,
    step_record,
    wait_outcome,
)
from ._sysdb import now_ms
from ._tracing import call_span

F = TypeVar("F", bound=Callable[..., Any])

_tx_conn: ContextVar[Connection | None] = ContextVar("wf_tx_conn", default=None)


def db() -> Connection:
    """The SQLAlchemy Connection of the running @wf.transaction."""
    conn = _tx_conn.get()
    if conn is None:
        raise WfError("wf.db() is only available inside a @wf.transaction function")
    return conn


def _mark(wrapper: Any, fn: Callable[..., Any], kind: str, name: str) -> Any:
    functools.update_wrapper(wrapper, fn)
    wrapper.wf_kind = kind
    wrapper.wf_name = name
    return wrapper


# -- workflows ----------------------------------------------------------------------------


def _call_workflow(spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ex = _executor.for_call()
    plan = begin_workflow(ex.sysdb, ex.executor_id, spec, args, kwargs)
    if isinstance(plan, Existing):
        return _finish_existing(ex, spec, plan)
    plan.ctx.executor = ex
    a, kw = plan.decoded_args()
    try:
        with ex.running_inline(plan.ctx.workflow_id):
            outcome = run_body(ex, spec, plan.ctx, a, kw)
    except _OwnershipLost:
        outcome = _after_lost(ex, plan.ctx)
    if plan.parent is not None and plan.parent_position is not None:
        record_child(
            ex, plan.parent, plan.parent_position, spec.name, plan.ctx.workflow_id, outcome
        )
    return outcome.result(plan.ctx.workflow_id)


def _begin(
    spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any], workflow_id: str | None
) -> tuple[_executor.Executor, Started | Existing]:
    ex = _executor.for_call()
    return ex, begin_workflow(ex.sysdb, ex.executor_id, spec, args, kwargs, workflow_id=workflow_id)


async def _call_workflow_async(
    spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # database calls go to a worker thread: a launch, a slow commit or an
    # outage must not stall the caller's event loop. The ID set by
    # set_workflow_id is taken here, since the thread's context is a copy.
    ex, plan = await asyncio.to_thread(_begin, spec, args, kwargs, take_assigned_id())
    if isinstance(plan, Existing):
        return await asyncio.to_thread(_finish_existing, ex, spec, plan)
    plan.ctx.executor = ex
    a, kw = plan.decoded_args()
    try:
        with ex.running_inline(plan.ctx.workflow_id):
            outcome = await run_body_async(ex, spec, plan.ctx, a, kw)
    except _OwnershipLost:
        outcome = await asyncio.to_thread(_after_lost, ex, plan.ctx)
    if plan.parent is not None and plan.parent_position is not None:
        await asyncio.to_thread(
            record_child,
            ex,
            plan.parent,
            plan.parent_position,
            spec.name,
            plan.ctx.workflow_id,
            outcome,
        )
    return outcome.result(plan.ctx.workflow_id)


def _after_lost(ex: _executor.Executor, ctx: WorkflowContext) -> Outcome:
    if ex.stopping.is_set():
        raise WfError(
            f"wf shut down while workflow {ctx.workflow_id} was running; recovery will finish it"
        )
    # another executor adopted it: its result is ours to return
    return wait_outcome(ex.sysdb, ctx.workflow_id, None, ex)


def _finish_existing(ex: _executor.Executor, spec: WorkflowSpec, plan: Existing) -> Any:
    outcome = plan.outcome or wait_outcome(ex.sysdb, plan.workflow_id, None, ex)
    if plan.parent is not None and plan.parent_position is not None and not plan.recorded:
        record_child(ex, plan.parent, plan.parent_position, spec.name, plan.workflow_id, outcome)
    return outcome.result(plan.workflow_id)


@overload
def workflow(fn: F) -> F: ...
@overload
def workflow(*, max_recovery_attempts: int = 50, name: str | None = None) -> Callable[[F], F]: ...
def workflow(fn: Any = None, *, max_recovery_attempts: int = 50, name: str | None = None) -> Any:
    """A durable workflow: its calls are recorded and it runs to completion."""
    if max_recovery_attempts < 0:
        raise ConfigurationError("max_recovery_attempts must be >= 0")

    def deco(f: F) -> F:
        spec = WorkflowSpec(
            name or qualified_name(f), f, inspect.iscoroutinefunction(f), max_recovery_attempts
        )
        register_workflow(spec)
        if spec.is_async:

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                return await _call_workflow_async(spec, args, kwargs)

            wrapper: Any = awrapper
        else:

            def swrapper(*args: Any, **kwargs: Any) -> Any:
                return _call_workflow(spec, args, kwargs)

            wrapper = swrapper
        wrapper.wf_spec = spec
        return cast(F, _mark(wrapper, f, "workflow", spec.name))

    return deco(fn) if callable(fn) else deco


# -- steps ----------------------------------------------------------------------------------


def _check_policy(
    retries: int, interval: float, backoff: float, max_interval: float
) -> RetryPolicy:
    if retries < 0 or interval < 0 or backoff < 1 or max_interval < 0:
        raise ConfigurationError("step retries/interval must be >= 0 and backoff >= 1")
    return RetryPolicy(retries, interval, backoff, max_interval)


def step(
    fn: Any = None,
    *,
    retries: int = 3,
    interval: float = 1.0,
    backoff: float = 2.0,
    max_interval: float = 60.0,
    name: str | None = None,
) -> Any:
    """A step: run at least once, never again once it has completed.

    ``retries`` extra attempts after a failure, waiting ``interval`` seconds,
    multiplied by ``backoff`` each time, at most ``max_interval``. When all
    fail, the last underlying error is raised (and recorded)."""
    policy = _check_policy(retries, interval, backoff, max_interval)

    def deco(f: F) -> F:
        sname = name or f.__qualname__
        if inspect.iscoroutinefunction(f):

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                ctx = current.get()
                if ctx is None or ctx.in_step is not None:
                    return await _retry_async(None, policy, sname, lambda: f(*args, **kwargs))
                ex = _executor.for_call()
                pos, rec = step_begin(ex, ctx, sname, "step")
                if rec is not None:
                    return replay(ctx, pos, rec, sname, "step")
                started = now_ms()
                _enter_step(ctx, sname, pos)
                value, exc = None, None
                try:
                    with call_span("step", sname, ctx.workflow_id, pos):
                        value = await _retry_async(ex, policy, sname, lambda: f(*args, **kwargs))
                except Exception as e:
                    exc = e
                finally:
                    ctx.in_step = None
                return await asyncio.to_thread(
                    step_record, ex, ctx, pos, sname, "step", started, value, exc
                )

            return cast(F, _mark(awrapper, f, "step", sname))

        def swrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = current.get()
            if ctx is None or ctx.in_step is not None:
                return run_with_retries(None, policy, sname, lambda: f(*args, **kwargs))
            ex = _executor.for_call()
            pos, rec = step_begin(ex, ctx, sname, "step")
            if rec is not None:
                return replay(ctx, pos, rec, sname, "step")
            started = now_ms()
            _enter_step(ctx, sname, pos)
            value, exc = None, None
            try:
                with call_span("step", sname, ctx.workflow_id, pos):
                    value = run_with_retries(ex, policy, sname, lambda: f(*args, **kwargs))
            except Exception as e:
                exc = e
            finally:
                ctx.in_step = None
            return step_record(ex, ctx, pos, sname, "step", started, value, exc)

        return cast(F, _mark(swrapper, f, "step", sname))

    return deco(fn) if callable(fn) else deco


communicator = step


def _enter_step(ctx: WorkflowContext, name: str, pos: int) -> None:
    ctx.in_step = name
    ctx.step_position = pos
    ctx.step_log_seq = 0


async def _retry_async(ex: Any, policy: RetryPolicy, name: str, call: Callable[[], Any]) -> Any:
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as e:
            if attempt >= policy.retries or isinstance(e, WfError):
                raise
            delay = policy.delay(attempt)
            if ex is not None and ex.stopping.is_set():
                raise _OwnershipLost() from None
            await asyncio.sleep(delay)
            attempt += 1


# -- transactions --------------------------------------------------------------------------

ISOLATIONS = ("serializable", "repeatable_read", "read_committed")


def transaction(
    fn: Any = None,
    *,
    isolation: str = "serializable",
    read_only: bool = False,
    name: str | None = None,
) -> Any:
    """A database transaction in the application database, run exactly once
    inside a workflow: its output is recorded in the same commit."""
    if isolation not in ISOLATIONS:
        raise ConfigurationError(
            f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}"
        )

    def deco(f: F) -> F:
        tname = name or f.__qualname__

        def run(call: Callable[[], Any]) -> Any:
            ctx = current.get()
            if ctx is not None and ctx.in_step is not None:
                ctx = None  # inside a step: a plain transaction
            return run_transaction(_executor.for_call(), ctx, tname, call, isolation, read_only)

        if inspect.iscoroutinefunction(f):

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                # the body runs on its own event loop in a worker thread, which
                # holds the (synchronous) database transaction
                return await asyncio.to_thread(run, lambda: asyncio.run(f(*args, **kwargs)))

            return cast(F, _mark(awrapper, f, "transaction", tname))

        def swrapper(*args: Any, **kwargs: Any) -> Any:
            return run(lambda: f(*args, **kwargs))

        return cast(F, _mark(swrapper, f, "transaction", tname))

    return deco(fn) if callable(fn) else deco
